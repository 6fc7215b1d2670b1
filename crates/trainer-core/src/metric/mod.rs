//! Metrics accumulated on the device and read back only at log time.

mod accumulator;
mod confusion;
mod custom;
mod latest;
mod monitor;

pub use crate::split::Split;
pub use crate::state::Best;
pub use accumulator::{MetricAccumulator, Totals};
pub use confusion::ConfusionMatrix;
pub use custom::{Metric, Metrics};
pub use latest::{AvailableMetrics, LatestMetrics};
pub use monitor::{Mode, Monitor};

/// The training metrics that measure time and throughput (`elapsed_seconds`, `eta_seconds`,
/// `samples_per_second`, `steps_per_second`): they differ between any two runs, so comparisons
/// of runs and default plots leave them out.
pub const TIMING_METRICS: [&str; 4] = [
    "elapsed_seconds",
    "eta_seconds",
    "samples_per_second",
    "steps_per_second",
];
