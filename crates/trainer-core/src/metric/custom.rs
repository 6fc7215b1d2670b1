use std::sync::Arc;

use burn::tensor::{backend::Backend, Tensor};

use crate::step::StepOutput;

/// A metric of your own, computed like the built-in ones: each batch gives a few statistics as
/// a device tensor, the trainer sums them on the device, and the value is computed on the host
/// from the sums when the metrics are read (at log time, at the end of a validation pass).
///
/// The sums of an unfinished logging window go into checkpoints, so a resumed run reports the
/// same values. The name appears in the metrics of every split the metric applies to, in
/// [`Context::metric_names`](crate::callback::Context::metric_names) (so early stopping and
/// checkpointing can monitor it) and in the event log's CSV header.
///
/// ```
/// use burn::tensor::{backend::Backend, Tensor};
/// use trainer_core::metric::Metric;
/// use trainer_core::StepOutput;
///
/// /// Mean absolute error of a regression output.
/// struct MeanAbsoluteError;
///
/// impl<B: Backend> Metric<B> for MeanAbsoluteError {
///     fn name(&self) -> String {
///         "mae".into()
///     }
///
///     fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>> {
///         let regression = output.regression_items()?;
///         let errors = regression.predictions.clone().sub(regression.targets.clone()).abs();
///         let count = errors.dims().iter().product::<usize>() as f32;
///         let device = errors.device();
///         // Statistics: [sum of |error|, number of values].
///         Some(Tensor::cat(vec![errors.sum(), Tensor::from_floats([count], &device)], 0))
///     }
///
///     fn value(&self, sums: &[f64]) -> Option<f64> {
///         (sums[1] > 0.0).then(|| sums[0] / sums[1])
///     }
/// }
/// ```
pub trait Metric<B: Backend>: Send + Sync {
    /// The metric's name in the logs (`mae`, `error_rate`, ...). It must not be the name of a
    /// built-in metric.
    fn name(&self) -> String;

    /// One batch's statistics, as a 1-D float tensor of a fixed length, to be summed over the
    /// batches of a window; `None` when the output lacks what the metric needs. Stays on the
    /// device: no read-back here.
    fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>>;

    /// The metric's value from the statistics summed over a window (host values, in the order
    /// `batch_stats` gives them); `None` when there is nothing to report.
    fn value(&self, sums: &[f64]) -> Option<f64>;

    /// The names of the values it reports: its [`name`](Metric::name) by default. A metric that
    /// reports several values (the confusion counts: three macro scores) lists them.
    fn value_names(&self) -> Vec<String> {
        vec![self.name()]
    }

    /// The values it reports from the summed statistics, by name: its [`value`](Metric::value)
    /// under its name by default.
    fn values(&self, sums: &[f64]) -> Vec<(String, f64)> {
        self.value(sums)
            .map(|value| vec![(self.name(), value)])
            .unwrap_or_default()
    }

    /// Whether the metric is computed on training batches too, not only in validation and test
    /// passes. Default: yes.
    fn on_train(&self) -> bool {
        true
    }
}

/// The user metrics of a trainer, shared by its accumulators.
pub type Metrics<B> = Arc<[Arc<dyn Metric<B>>]>;
