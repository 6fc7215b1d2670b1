//! [`TrainingState`]: where a run is, and what it has seen so far.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Aggregated metric values, by name (`loss`, `accuracy`, ...).
pub type MetricValues = BTreeMap<String, f64>;

/// Why `fit` ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "message")]
pub enum StopReason {
    /// Every configured epoch ran.
    EpochsCompleted,
    /// `max_steps` optimizer steps ran.
    MaxStepsReached,
    /// A callback asked to stop, with its reason.
    Requested(String),
    /// An error ended the run.
    Failed(String),
    /// The run was cancelled from outside (a signal, a cancel file), with how.
    Cancelled(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::EpochsCompleted => write!(f, "all epochs completed"),
            StopReason::MaxStepsReached => write!(f, "max_steps reached"),
            StopReason::Requested(reason) => write!(f, "stopped: {reason}"),
            StopReason::Failed(message) => write!(f, "failed: {message}"),
            StopReason::Cancelled(how) => write!(f, "cancelled: {how}"),
        }
    }
}

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

/// The best value seen of a named metric (in the state: the validation loss).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMetric {
    /// Metric name with its split, e.g. `valid/loss`.
    pub name: String,
    /// The value and when it was seen (`value`, `step`, `epoch` beside `name` in files).
    #[serde(flatten)]
    pub best: Best,
}

/// The aggregated metrics of one finished epoch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpochSummary {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Optimizer steps done when the epoch ended.
    pub global_step: usize,
    /// Learning rate at the epoch's end.
    pub learning_rate: f64,
    /// Mean training metrics over the epoch.
    pub train: MetricValues,
    /// Validation metrics of the validation run at the epoch's end, if there was one.
    pub valid: Option<MetricValues>,
    /// Wall-clock seconds the epoch took, validation included.
    pub seconds: f64,
}

/// Where a training run stands. It serializes, so checkpoints can carry it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainingState {
    /// The current epoch, counted from 0; after an epoch ends it is the number of finished epochs.
    pub epoch: usize,
    /// Optimizer steps done.
    pub global_step: usize,
    /// Batches consumed in the current epoch; the data cursor.
    pub batch_in_epoch: usize,
    /// Training items seen over the whole run.
    pub samples_seen: u64,
    /// Seconds spent in `fit`, over all sessions of the run.
    pub elapsed_seconds: f64,
    /// Best value of the monitored metric (the validation loss by default).
    pub best: Option<BestMetric>,
    /// One summary per finished epoch.
    pub history: Vec<EpochSummary>,
    /// The learning-rate schedule's state, as of the last epoch end or the end of `fit`.
    pub schedule: Option<serde_json::Value>,
    /// Why the run stopped; `None` while it runs.
    pub stop_reason: Option<StopReason>,
    /// Checkpoint saves that failed, over the whole run (each is also a `checkpoint_failed`
    /// event). Absent in older checkpoints (read as 0).
    #[serde(default)]
    pub checkpoint_failures: usize,
}

/// Milliseconds since the Unix epoch, now (0 on a clock set before 1970): the time stamp of
/// events, checkpoints and index entries.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
