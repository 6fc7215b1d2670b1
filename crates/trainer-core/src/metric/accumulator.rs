use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, ElementConversion, Int, Tensor, TensorData};

use super::{ConfusionMatrix, Metrics};
use crate::state::MetricValues;
use crate::step::StepOutput;

/// Sums of per-batch metrics, kept as device tensors so that adding a batch never waits for the
/// device; [`read`](MetricAccumulator::read) does the one host read-back.
///
/// It holds the loss summed over items (batch mean × batch size) and, for classification outputs,
/// the number of correct predictions.
pub struct MetricAccumulator<B: Backend> {
    loss_sum: Option<Tensor<B, 1>>,
    correct: Option<Tensor<B, 1, Int>>,
    items: usize,
    classified: usize,
    batches: usize,
    /// Host totals carried over from an earlier session (a resumed run).
    carried: Totals,
    /// Whether `carried.loss_sum` was moved into `loss_sum`.
    carried_on_device: bool,
    /// Whether to count (true, predicted) pairs, and their counts `[classes, classes]`.
    track_confusion: bool,
    confusion: Option<Tensor<B, 2>>,
    /// `k` of the top-k accuracy, and the hits so far.
    top_k: Option<usize>,
    top_k_correct: Option<Tensor<B, 1, Int>>,
    /// User metrics, and the device sums of their statistics (same order).
    metrics: Metrics<B>,
    metric_sums: Vec<Option<Tensor<B, 1>>>,
}

impl<B: Backend> Default for MetricAccumulator<B> {
    fn default() -> Self {
        Self {
            loss_sum: None,
            correct: None,
            items: 0,
            classified: 0,
            batches: 0,
            carried: Totals::default(),
            carried_on_device: false,
            track_confusion: false,
            confusion: None,
            top_k: None,
            top_k_correct: None,
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

    /// Also counts (true, predicted) pairs of classification outputs, on the device, for
    /// [`read_confusion`](Self::read_confusion) (one `[C, N] × [N, C]` product per batch: the
    /// trainer does it for validation and test passes).
    pub fn with_confusion(mut self) -> Self {
        self.track_confusion = true;
        self
    }

    /// Also counts items whose target is among the `k` largest logits (`top{k}_accuracy`).
    pub fn with_top_k(mut self, k: Option<usize>) -> Self {
        self.top_k = k.filter(|&k| k > 0);
        self
    }

    /// Also computes these user [`Metric`](super::Metric)s.
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
        if let Some(classification) = &output.classification {
            let predicted: Tensor<B, 1, Int> =
                classification.logits.clone().argmax(1).reshape([-1]);
            if let Some(k) = self.top_k {
                let [items, classes] = classification.logits.dims();
                let k = k.min(classes);
                let (_, top) = classification.logits.clone().topk_with_indices(k, 1);
                let truth = classification
                    .targets
                    .clone()
                    .reshape([items, 1])
                    .repeat_dim(1, k);
                let hits = top.equal(truth).any_dim(1).int().sum();
                self.top_k_correct = Some(match self.top_k_correct.take() {
                    Some(sum) => sum.add(hits),
                    None => hits,
                });
            }
            if self.track_confusion {
                let classes = classification.logits.dims()[1];
                let truth = classification.targets.clone().one_hot::<2>(classes).float();
                let guess = predicted.clone().one_hot::<2>(classes).float();
                // Counts below 2^24 per cell are exact in f32.
                let pairs = truth.transpose().matmul(guess);
                self.confusion = Some(match self.confusion.take() {
                    Some(sum) => sum.add(pairs),
                    None => pairs,
                });
            }
            let hits = predicted.equal(classification.targets.clone()).int().sum();
            self.correct = Some(match self.correct.take() {
                Some(sum) => sum.add(hits),
                None => hits,
            });
            self.classified += n;
        }
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

    /// Reads the sums back (one device sync) and returns the raw totals:
    /// `(loss summed over items, items, correct predictions, classified items)`.
    pub fn read_totals(&self) -> Totals {
        let loss_sum = self
            .loss_sum
            .clone()
            .map(|t| t.into_scalar().elem::<f64>())
            .unwrap_or(0.0);
        let correct = self
            .correct
            .clone()
            .map(|t| t.into_scalar().elem::<i64>() as u64)
            .unwrap_or(0);
        let top_k_correct = self
            .top_k_correct
            .clone()
            .map(|t| t.into_scalar().elem::<i64>() as u64)
            .unwrap_or(0);
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
            correct,
            classified: self.classified as u64,
            top_k: self.top_k,
            top_k_correct,
            metrics,
        });
        totals
    }

    /// Reads the confusion matrix back (one device sync), when counting and there were
    /// classification outputs.
    pub fn read_confusion(&self) -> Option<ConfusionMatrix> {
        let confusion = self.confusion.clone()?;
        let [classes, _] = confusion.dims();
        let values = confusion
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .ok()?;
        Some(ConfusionMatrix {
            counts: values
                .chunks(classes)
                .map(|row| row.iter().map(|&v| v as u64).collect())
                .collect(),
        })
    }

    /// Reads the means back (one device sync): `loss`, `accuracy` for classification, and the
    /// user metrics.
    pub fn read(&self) -> MetricValues {
        self.values(&self.read_totals())
    }

    /// The metric values of `totals`: their means plus this accumulator's user metrics.
    pub fn values(&self, totals: &Totals) -> MetricValues {
        let mut values = totals.means();
        for metric in self.metrics.iter() {
            let name = metric.name();
            if let Some(value) = totals
                .metrics
                .get(&name)
                .and_then(|sums| metric.value(sums))
            {
                values.insert(name, value);
            }
        }
        values
    }

    /// Empties the accumulator (it keeps counting what it counted: confusion, top-k, user
    /// metrics).
    pub fn reset(&mut self) {
        let (track_confusion, top_k, metrics) =
            (self.track_confusion, self.top_k, self.metrics.clone());
        *self = Self::default().with_metrics(metrics);
        self.track_confusion = track_confusion;
        self.top_k = top_k;
    }
}

/// Metric sums on the host, which add up across read-backs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Loss summed over items.
    pub loss_sum: f64,
    /// Items seen.
    pub items: u64,
    /// Correct predictions.
    pub correct: u64,
    /// Items with a classification output.
    pub classified: u64,
    /// `k` of the top-k accuracy, when counted.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Items whose target was among the `k` largest logits.
    #[serde(default)]
    pub top_k_correct: u64,
    /// Summed statistics of user metrics, by metric name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Vec<f64>>,
}

impl Totals {
    /// Adds another set of totals.
    pub fn add(&mut self, other: &Totals) {
        self.loss_sum += other.loss_sum;
        self.items += other.items;
        self.correct += other.correct;
        self.classified += other.classified;
        self.top_k = self.top_k.or(other.top_k);
        self.top_k_correct += other.top_k_correct;
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

    /// The means: `loss`, and `accuracy` when there were classification outputs (user metrics
    /// need their definitions: [`MetricAccumulator::values`]).
    pub fn means(&self) -> MetricValues {
        let mut values = MetricValues::new();
        if self.items > 0 {
            values.insert("loss".into(), self.loss_sum / self.items as f64);
        }
        if self.classified > 0 {
            values.insert(
                "accuracy".into(),
                self.correct as f64 / self.classified as f64,
            );
            if let Some(k) = self.top_k {
                values.insert(
                    format!("top{k}_accuracy"),
                    self.top_k_correct as f64 / self.classified as f64,
                );
            }
        }
        values
    }
}
