//! The event schema: a typed [`Event`] in the program, one flat JSON object per line on disk
//! (`docs/events.md`). The line form is a private struct the event converts to and from, so the
//! bytes on disk do not depend on how the types are arranged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::split::Split;
use crate::state::{unix_ms_now, MetricValues};

/// The version of the event schema, in every `run_started` event.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

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

/// Metric values of one split (non-finite ones are `None`, written as `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The split they were measured on.
    pub split: Split,
    /// The values by name.
    pub metrics: BTreeMap<String, Option<f64>>,
}

impl Reading {
    /// The reading of `values` on `split`.
    pub fn new(split: Split, values: &MetricValues) -> Self {
        let metrics = values
            .iter()
            .map(|(k, v)| (k.clone(), v.is_finite().then_some(*v)))
            .collect();
        Self { split, metrics }
    }
}

/// What happened, with what each kind of event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A run (or a resumed session of it) started.
    RunStarted {
        /// [`EVENT_SCHEMA_VERSION`] of the writer.
        schema_version: u32,
        /// The run's config.
        config: serde_json::Value,
        /// Whether this session resumed from a checkpoint.
        resumed: bool,
    },
    /// Training metrics were read (every `log_every` steps and at epoch ends).
    Metrics(Reading),
    /// A validation or test pass ended.
    Validation(Reading),
    /// A training epoch ended: its mean training metrics and its last lr.
    Epoch(Reading),
    /// A checkpoint file was written.
    Checkpoint {
        /// Its name within the checkpoint folder.
        file: String,
        /// The files of its companion folder (`<name>.artifacts/`), relative to it; absent
        /// from the line when there are none.
        files: Vec<String>,
    },
    /// A checkpoint could not be written (the earlier ones are intact).
    CheckpointFailed {
        /// The name it would have had.
        file: String,
        /// Why.
        reason: String,
    },
    /// A callback stopped the run early (early stopping, a non-finite loss).
    EarlyStop {
        /// Why.
        reason: String,
    },
    /// A file reached the run's artifact sink (the job runtime's uploads).
    ArtifactUploaded {
        /// Its name at the sink (`checkpoints/epoch-0001-step-000500.ckpt`).
        file: String,
        /// The SHA-256 of its bytes, in hex.
        sha256: String,
        /// Its size.
        bytes: u64,
    },
    /// A file could not be uploaded after the retries.
    ArtifactFailed {
        /// Its name at the sink.
        file: String,
        /// Why the last attempt failed.
        reason: String,
    },
    /// The run ended.
    RunEnded {
        /// How.
        status: RunStatus,
        /// Why, unless it completed.
        reason: Option<String>,
    },
    /// A file the run made besides checkpoints, named by its kind (the job runtime's `sample`);
    /// on disk the kind is the event's name. A line of a name not listed above reads as one.
    Artifact {
        /// What it is (`sample`).
        kind: String,
        /// The file, if it was written to one.
        file: Option<String>,
    },
}

/// One event of a run: when, at which step and epoch, and what. One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "EventLine", try_from = "EventLine")]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Optimizer steps done.
    pub step: usize,
    /// Epochs finished.
    pub epoch: usize,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event of `kind` at `step` and `epoch`, stamped now.
    pub fn new(kind: EventKind, step: usize, epoch: usize) -> Self {
        Self {
            time_unix_ms: unix_ms_now(),
            step,
            epoch,
            kind,
        }
    }

    /// The event's name as the line's `event` field spells it (`metrics`, `run_ended`, an
    /// artifact's kind).
    pub fn name(&self) -> &str {
        match &self.kind {
            EventKind::RunStarted { .. } => "run_started",
            EventKind::Metrics(_) => "metrics",
            EventKind::Validation(_) => "validation",
            EventKind::Epoch(_) => "epoch",
            EventKind::Checkpoint { .. } => "checkpoint",
            EventKind::CheckpointFailed { .. } => "checkpoint_failed",
            EventKind::ArtifactUploaded { .. } => "artifact_uploaded",
            EventKind::ArtifactFailed { .. } => "artifact_failed",
            EventKind::EarlyStop { .. } => "early_stop",
            EventKind::RunEnded { .. } => "run_ended",
            EventKind::Artifact { kind, .. } => kind,
        }
    }

    /// The metric values of a `metrics`, `validation` or `epoch` event.
    pub fn reading(&self) -> Option<&Reading> {
        match &self.kind {
            EventKind::Metrics(reading)
            | EventKind::Validation(reading)
            | EventKind::Epoch(reading) => Some(reading),
            _ => None,
        }
    }
}

/// The flat form of an event on disk: every field optional but the first four. Field order and
/// omission rules fix the bytes of a line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventLine {
    event: String,
    time_unix_ms: u64,
    step: usize,
    epoch: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resumed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    split: Option<Split>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics: Option<BTreeMap<String, Option<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<Event> for EventLine {
    fn from(event: Event) -> Self {
        let name = event.name().to_string();
        let mut line = EventLine {
            event: name,
            time_unix_ms: event.time_unix_ms,
            step: event.step,
            epoch: event.epoch,
            schema_version: None,
            config: None,
            resumed: None,
            split: None,
            metrics: None,
            file: None,
            files: Vec::new(),
            sha256: None,
            bytes: None,
            status: None,
            reason: None,
        };
        match event.kind {
            EventKind::RunStarted {
                schema_version,
                config,
                resumed,
            } => {
                line.schema_version = Some(schema_version);
                line.config = Some(config);
                line.resumed = Some(resumed);
            }
            EventKind::Metrics(reading)
            | EventKind::Validation(reading)
            | EventKind::Epoch(reading) => {
                line.split = Some(reading.split);
                line.metrics = Some(reading.metrics);
            }
            EventKind::Checkpoint { file, files } => {
                line.file = Some(file);
                line.files = files;
            }
            EventKind::CheckpointFailed { file, reason } => {
                line.file = Some(file);
                line.reason = Some(reason);
            }
            EventKind::ArtifactUploaded {
                file,
                sha256,
                bytes,
            } => {
                line.file = Some(file);
                line.sha256 = Some(sha256);
                line.bytes = Some(bytes);
            }
            EventKind::ArtifactFailed { file, reason } => {
                line.file = Some(file);
                line.reason = Some(reason);
            }
            EventKind::EarlyStop { reason } => line.reason = Some(reason),
            EventKind::RunEnded { status, reason } => {
                line.status = Some(status);
                line.reason = reason;
            }
            EventKind::Artifact { file, .. } => line.file = file,
        }
        line
    }
}

impl TryFrom<EventLine> for Event {
    type Error = String;

    fn try_from(line: EventLine) -> Result<Self, String> {
        let missing = |field: &str| format!("a `{}` event without `{field}`", line.event);
        let reading = |line: &EventLine| -> Result<Reading, String> {
            Ok(Reading {
                split: line.split.ok_or_else(|| missing("split"))?,
                metrics: line.metrics.clone().ok_or_else(|| missing("metrics"))?,
            })
        };
        let kind = match line.event.as_str() {
            "run_started" => EventKind::RunStarted {
                schema_version: line
                    .schema_version
                    .ok_or_else(|| missing("schema_version"))?,
                config: line.config.clone().ok_or_else(|| missing("config"))?,
                resumed: line.resumed.ok_or_else(|| missing("resumed"))?,
            },
            "metrics" => EventKind::Metrics(reading(&line)?),
            "validation" => EventKind::Validation(reading(&line)?),
            "epoch" => EventKind::Epoch(reading(&line)?),
            "checkpoint" => EventKind::Checkpoint {
                file: line.file.clone().ok_or_else(|| missing("file"))?,
                files: line.files.clone(),
            },
            "checkpoint_failed" => EventKind::CheckpointFailed {
                file: line.file.clone().ok_or_else(|| missing("file"))?,
                reason: line.reason.clone().ok_or_else(|| missing("reason"))?,
            },
            "artifact_uploaded" => EventKind::ArtifactUploaded {
                file: line.file.clone().ok_or_else(|| missing("file"))?,
                sha256: line.sha256.clone().ok_or_else(|| missing("sha256"))?,
                bytes: line.bytes.ok_or_else(|| missing("bytes"))?,
            },
            "artifact_failed" => EventKind::ArtifactFailed {
                file: line.file.clone().ok_or_else(|| missing("file"))?,
                reason: line.reason.clone().ok_or_else(|| missing("reason"))?,
            },
            "early_stop" => EventKind::EarlyStop {
                reason: line.reason.clone().ok_or_else(|| missing("reason"))?,
            },
            "run_ended" => EventKind::RunEnded {
                status: line.status.ok_or_else(|| missing("status"))?,
                reason: line.reason.clone(),
            },
            "" => return Err("an event without a name".into()),
            other => EventKind::Artifact {
                kind: other.to_string(),
                file: line.file.clone(),
            },
        };
        Ok(Event {
            time_unix_ms: line.time_unix_ms,
            step: line.step,
            epoch: line.epoch,
            kind,
        })
    }
}
