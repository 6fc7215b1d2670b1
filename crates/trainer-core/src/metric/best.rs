//! The best value of a monitored metric and when it was seen: one type for early stopping, the
//! checkpointing callback and a checkpoint folder's index.

use serde::{Deserialize, Serialize};

/// The best value of a monitored metric, with the optimizer step and epoch it was seen at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The value.
    pub value: f64,
    /// Optimizer steps done when it was seen.
    pub step: usize,
    /// Epochs finished when it was seen.
    pub epoch: usize,
}
