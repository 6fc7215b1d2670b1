//! Metrics accumulated on the device and read back only at log time.

mod accumulator;
mod confusion;
mod monitor;
mod split;

pub use accumulator::{MetricAccumulator, Totals};
pub use confusion::ConfusionMatrix;
pub use monitor::{Mode, Monitor};
pub use split::Split;
