use serde::{Deserialize, Serialize};

use crate::metric::Split;
use crate::state::MetricValues;

/// The version of the event schema, in every `run_started` event.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run (or a resumed session of it) started; carries the config.
    RunStarted,
    /// Training metrics were read (every `log_every` steps and at epoch ends).
    Metrics,
    /// A validation or test pass ended; carries its metrics.
    Validation,
    /// A training epoch ended; carries the epoch's mean training metrics and its last lr.
    Epoch,
    /// A checkpoint file was written.
    Checkpoint,
    /// A checkpoint could not be written (the earlier ones are intact); carries the file it
    /// would have been and the reason.
    CheckpointFailed,
    /// A sample was produced (job runtime).
    Sample,
    /// A callback stopped the run early (early stopping, a non-finite loss); carries the reason.
    EarlyStop,
    /// The run ended; carries the status and, unless completed, the reason.
    RunEnded,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// All epochs or steps ran, or a callback stopped it on purpose (early stopping).
    Completed,
    /// An error ended it.
    Failed,
    /// It was cancelled from outside (a signal, a cancel file).
    Cancelled,
}

/// One line of `events.jsonl`. Every event has `event`, `time_unix_ms`, `step` and `epoch`;
/// the other fields appear with the kinds that carry them (see `docs/events.md`). Non-finite
/// metric values are written as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// When, in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Optimizer steps done.
    pub step: usize,
    /// Epochs finished.
    pub epoch: usize,
    /// `run_started`: the schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    /// `run_started`: the run's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// `run_started`: whether this session resumed from a checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<bool>,
    /// `metrics`, `validation`: the split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// `metrics`, `validation`: the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<std::collections::BTreeMap<String, Option<f64>>>,
    /// `checkpoint`, `sample`: the file written; `checkpoint_failed`: the file not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `run_ended`: how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// `early_stop`, `checkpoint_failed`, `run_ended`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event of `kind` at `step` and `epoch`, stamped now, with no other field.
    pub fn new(kind: EventKind, step: usize, epoch: usize) -> Self {
        Self {
            event: kind,
            time_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            step,
            epoch,
            schema_version: None,
            config: None,
            resumed: None,
            split: None,
            metrics: None,
            file: None,
            status: None,
            reason: None,
        }
    }

    /// Adds a split's metric values (non-finite ones become `None`, written as `null`).
    pub fn with_metrics(mut self, split: Split, values: &MetricValues) -> Self {
        self.split = Some(split);
        self.metrics = Some(
            values
                .iter()
                .map(|(k, v)| (k.clone(), v.is_finite().then_some(*v)))
                .collect(),
        );
        self
    }
}
