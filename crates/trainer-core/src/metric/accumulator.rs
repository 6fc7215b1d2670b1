use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, ElementConversion, Tensor, TensorData};

use super::names::{top_k_accuracy, ACCURACY, LOSS};
use super::Metrics;
use crate::state::MetricValues;
use crate::step::StepOutput;

/// Sums of per-batch metrics, kept as device tensors so that adding a batch never waits for the
/// device; [`read`](MetricAccumulator::read) does the one host read-back.
///
/// It holds the loss summed over items (batch mean × batch size) and the summed statistics of
/// each [`Metric`](super::Metric) it computes (the built-in accuracy, top-k and confusion counts
/// among them).
pub struct MetricAccumulator<B: Backend> {
    loss_sum: Option<Tensor<B, 1>>,
    items: usize,
    batches: usize,
    /// Host totals carried over from an earlier session (a resumed run).
    carried: Totals,
    /// Whether `carried.loss_sum` was moved into `loss_sum`.
    carried_on_device: bool,
    /// The metrics, and the device sums of their statistics (same order).
    metrics: Metrics<B>,
    metric_sums: Vec<Option<Tensor<B, 1>>>,
}

impl<B: Backend> Default for MetricAccumulator<B> {
    fn default() -> Self {
        Self {
            loss_sum: None,
            items: 0,
            batches: 0,
            carried: Totals::default(),
            carried_on_device: false,
            metrics: Metrics::<B>::from([]),
            metric_sums: Vec::new(),
        }
    }
}

impl<B: Backend> MetricAccumulator<B> {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that starts from totals read back earlier (used when a run resumes in the
    /// middle of a logging window).
    pub fn from_totals(totals: Totals) -> Self {
        Self {
            carried: totals,
            ..Self::default()
        }
    }

    /// Computes these [`Metric`](super::Metric)s.
    pub fn with_metrics(mut self, metrics: Metrics<B>) -> Self {
        self.metric_sums = vec![None; metrics.len()];
        self.metrics = metrics;
        self
    }

    /// Adds one batch's output (already detached from any autodiff graph).
    pub fn update(&mut self, output: &StepOutput<B>) {
        for (metric, sum) in self.metrics.iter().zip(&mut self.metric_sums) {
            let Some(stats) = metric.batch_stats(output) else {
                continue;
            };
            *sum = Some(match sum.take() {
                Some(sum) => sum.add(stats),
                // Sums carried from a checkpoint go back on the device, as the loss's do.
                None => match self.carried.metrics.remove(&metric.name()) {
                    Some(carried) => {
                        let len = carried.len();
                        Tensor::<B, 1>::from_floats(
                            TensorData::new(carried, [len]),
                            &output.loss.device(),
                        )
                        .add(stats)
                    }
                    None => stats,
                },
            });
        }
        let n = output.batch_size;
        let weighted = output.loss.clone().reshape([1]).mul_scalar(n as f64);
        self.loss_sum = Some(match self.loss_sum.take() {
            Some(sum) => sum.add(weighted),
            // A carried sum was read from a device sum in the loss's precision: putting it back
            // on the device makes the sums that follow exactly those of an unbroken window.
            None if self.carried.items > 0 && !self.carried_on_device => {
                self.carried_on_device = true;
                let device = output.loss.device();
                Tensor::<B, 1>::from_floats([self.carried.loss_sum], &device).add(weighted)
            }
            None => weighted,
        });
        self.items += n;
        self.batches += 1;
    }

    /// Items added since the last reset.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Batches added since the last reset.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Whether nothing was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.batches == 0 && self.carried.items == 0
    }

    /// Reads the sums back (one device sync) and returns the totals: the loss summed over
    /// items, the items, and each metric's summed statistics.
    pub fn read_totals(&self) -> Totals {
        let loss_sum = self
            .loss_sum
            .clone()
            .map(|t| t.into_scalar().elem::<f64>())
            .unwrap_or(0.0);
        let mut totals = self.carried.clone();
        if self.carried_on_device {
            totals.loss_sum = 0.0;
        }
        let metrics = self
            .metrics
            .iter()
            .zip(&self.metric_sums)
            .filter_map(|(metric, sum)| {
                let values = sum
                    .clone()?
                    .into_data()
                    .convert::<f64>()
                    .into_vec::<f64>()
                    .ok()?;
                Some((metric.name(), values))
            })
            .collect();
        totals.add(&Totals {
            loss_sum,
            items: self.items as u64,
            metrics,
        });
        totals
    }

    /// Reads the means back (one device sync): `loss` and every metric's values.
    pub fn read(&self) -> MetricValues {
        self.values(&self.read_totals())
    }

    /// The metric values of `totals`: the mean loss plus the values of this accumulator's
    /// metrics.
    pub fn values(&self, totals: &Totals) -> MetricValues {
        let mut values = totals.means();
        for metric in self.metrics.iter() {
            if let Some(sums) = totals.metrics.get(&metric.name()) {
                values.extend(metric.values(sums));
            }
        }
        values
    }

    /// Empties the accumulator (it keeps its metrics).
    pub fn reset(&mut self) {
        let metrics = self.metrics.clone();
        *self = Self::default().with_metrics(metrics);
    }
}

/// Metric sums on the host, which add up across read-backs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredTotals")]
pub struct Totals {
    /// Loss summed over items.
    pub loss_sum: f64,
    /// Items seen.
    pub items: u64,
    /// Summed statistics of each metric, by metric name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Vec<f64>>,
}

/// Totals as checkpoints hold them: formats 1.0 and 1.1 kept accuracy and top-k counts in
/// fields of their own; they become the metrics' statistics.
#[derive(serde::Deserialize)]
struct StoredTotals {
    loss_sum: f64,
    items: u64,
    #[serde(default)]
    correct: u64,
    #[serde(default)]
    classified: u64,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    top_k_correct: u64,
    #[serde(default)]
    metrics: BTreeMap<String, Vec<f64>>,
}

impl From<StoredTotals> for Totals {
    fn from(stored: StoredTotals) -> Self {
        let mut metrics = stored.metrics;
        if stored.classified > 0 {
            let classified = stored.classified as f64;
            metrics
                .entry(ACCURACY.into())
                .or_insert_with(|| vec![stored.correct as f64, classified]);
            if let Some(k) = stored.top_k {
                metrics
                    .entry(top_k_accuracy(k))
                    .or_insert_with(|| vec![stored.top_k_correct as f64, classified]);
            }
        }
        Self {
            loss_sum: stored.loss_sum,
            items: stored.items,
            metrics,
        }
    }
}

impl Totals {
    /// Adds another set of totals.
    pub fn add(&mut self, other: &Totals) {
        self.loss_sum += other.loss_sum;
        self.items += other.items;
        for (name, sums) in &other.metrics {
            let mine = self.metrics.entry(name.clone()).or_default();
            if mine.len() < sums.len() {
                mine.resize(sums.len(), 0.0);
            }
            for (m, s) in mine.iter_mut().zip(sums) {
                *m += s;
            }
        }
    }

    /// The mean loss (the metrics' values need their definitions: [`MetricAccumulator::values`]).
    pub fn means(&self) -> MetricValues {
        let mut values = MetricValues::new();
        if self.items > 0 {
            values.insert(LOSS.into(), self.loss_sum / self.items as f64);
        }
        values
    }
}
