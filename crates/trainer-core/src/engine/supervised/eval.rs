//! The validation and test passes of the supervised trainer: the inner model over the data,
//! metrics on the device, the confusion matrix of classifiers, the best validation loss, and the
//! plateau schedule's metric.

use burn::tensor::backend::AutodiffBackend;

use super::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
use crate::callback::Hook;
use crate::data::{DataCursor, Shard};
use crate::engine::run_loop::StepProgram;
use crate::error::{Result, TrainerError};
use crate::metric::{names, ConfusionMatrix, MetricAccumulator, Split};
use crate::state::{Best, BestMetric, MetricValues};
use crate::step::ValidStep;

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    pub(super) fn run_eval(&mut self, split: Split) -> Result<MetricValues> {
        let (loader, method) = match split {
            Split::Test => (self.test.clone(), "test_data"),
            _ => (self.valid.clone(), "valid_data"),
        };
        let loader = loader.ok_or(TrainerError::MissingData {
            split: split.as_str(),
            builder_method: method,
        })?;
        let (begin, end) = match split {
            Split::Test => (Hook::TestBegin, Hook::TestEnd),
            _ => (Hook::ValidationBegin, Hook::ValidationEnd),
        };
        self.hook(begin)?;
        // During a data-parallel `fit`, every replica evaluates its shard (batches dealt as in
        // training, the last round too) and rank 0 adds their totals rank by rank.
        let (loader, others) = match &self.replicas {
            Some(replicas) => {
                let count = self.engine.config.replicas;
                let shard = loader.sharded(Shard::evaluation(0, count), self.device.clone());
                (shard, Some(replicas.begin_eval(split)?))
            }
            None => (loader, None),
        };
        let model = self.model().valid();
        let mut metrics =
            MetricAccumulator::<B::InnerBackend>::new().with_metrics(self.metrics.clone());
        if others.is_none() || loader.num_batches() > 0 {
            for batch in loader.iter(DataCursor::epoch_start(0))? {
                let output = ValidStep::step(&model, batch?);
                metrics.update(&output);
            }
        }
        let mut totals = metrics.read_totals();
        if let (Some(replicas), Some(others)) = (&self.replicas, others) {
            for other in replicas.eval_totals(others)? {
                totals.add(&other);
            }
        }
        let values = metrics.values(&totals);
        if let Some(confusion) = totals
            .metrics
            .get(names::CONFUSION)
            .and_then(|sums| ConfusionMatrix::from_sums(sums))
        {
            self.confusion.insert(split, confusion);
        }
        self.engine
            .latest
            .set(split, self.engine.state.global_step, values.clone());
        if split == Split::Valid {
            self.track_best(&values);
            if self.engine.schedule.needs_metric() {
                // A missing loss counts as no improvement.
                let loss = values.get(names::LOSS).copied().unwrap_or(f64::NAN);
                self.engine.schedule.step_with_metric(loss);
            }
        }
        self.hook(end)?;
        Ok(values)
    }

    /// Tracks the best validation loss in the state (the config's patience is an
    /// `EarlyStopping` callback the builder adds).
    fn track_best(&mut self, values: &MetricValues) {
        let Some(&loss) = values.get(names::LOSS) else {
            return;
        };
        let improves = self
            .engine
            .state
            .best
            .as_ref()
            .is_none_or(|best| loss < best.best.value);
        if improves {
            let state = &self.engine.state;
            let best = Best {
                value: loss,
                step: state.global_step,
                epoch: state.epoch,
            };
            self.engine.state.best = Some(BestMetric {
                name: "valid/loss".into(),
                best,
            });
        }
    }
}
