//! Metrics accumulated on the device and read back only at log time.

mod accumulator;
mod builtin;
mod confusion;
mod custom;
mod latest;
mod monitor;
pub mod names;

pub use crate::split::Split;
pub use crate::state::Best;
pub use accumulator::{MetricAccumulator, Totals};
pub use builtin::{Accuracy, ConfusionCounts, TopKAccuracy};
pub use confusion::ConfusionMatrix;
pub use custom::{Metric, Metrics};
pub use latest::{AvailableMetrics, LatestMetrics};
pub use monitor::{Mode, Monitor};

pub use names::TIMING_METRICS;
