use serde::{Deserialize, Serialize};

use crate::state::{MetricValues, StopReason, TrainingState};

/// What `fit` returns: why it stopped, where, and the last metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Why the run stopped.
    pub stop_reason: StopReason,
    /// Epochs finished.
    pub epochs: usize,
    /// Optimizer steps done.
    pub steps: usize,
    /// Seconds spent in `fit` over the whole run.
    pub seconds: f64,
    /// Mean training metrics of the last finished epoch.
    pub train: Option<MetricValues>,
    /// Metrics of the last validation.
    pub valid: Option<MetricValues>,
    /// Checkpoint saves that failed over the run (each logged, and a `checkpoint_failed` event).
    pub checkpoint_failures: usize,
}

impl FitReport {
    pub(crate) fn from_state(state: &TrainingState, valid: Option<MetricValues>) -> Self {
        Self {
            stop_reason: state
                .stop_reason
                .clone()
                .unwrap_or(StopReason::EpochsCompleted),
            epochs: state.epoch,
            steps: state.global_step,
            seconds: state.elapsed_seconds,
            train: state.history.last().map(|e| e.train.clone()),
            valid,
            checkpoint_failures: state.checkpoint_failures,
        }
    }
}
