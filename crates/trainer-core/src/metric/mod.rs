//! Metrics accumulated on the device and read back only at log time.

pub(crate) mod accumulator;
mod split;

pub use accumulator::MetricAccumulator;
pub use split::Split;
