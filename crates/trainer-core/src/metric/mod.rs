//! Metrics accumulated on the device and read back only at log time.

mod accumulator;
mod split;

pub use accumulator::{MetricAccumulator, Totals};
pub use split::Split;
