//! The calls the runtime makes of its child and the child's replies: one JSON object per line,
//! the child's replies prefixed with [`REPLY_PREFIX`] on its standard output (any other line
//! there — a trainer's `println!` — is passed on to the runtime's standard error).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The prefix of the child's reply lines.
pub const REPLY_PREFIX: &str = "@trainer-contract-v1 ";

/// A call, named by `op`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `setup`, then `configure`: the child makes the trainer's state. Replies the metric names.
    Start,
    /// A step: the batch is in the IPC file. Replies a [`StepReply`].
    Step {
        step: usize,
        epoch: usize,
        learning_rate: f64,
        seed: u64,
        emits_metrics: bool,
    },
    /// Write the state dict to the state file.
    StateDict,
    /// Load the state dict in the state file.
    LoadStateDict,
    /// `save_checkpoint`; replies the extra JSON.
    SaveCheckpoint {
        step: usize,
        output_dir: Option<PathBuf>,
        is_final: bool,
    },
    /// `load_checkpoint`.
    LoadCheckpoint {
        step: usize,
        checkpoint_file: PathBuf,
        checkpoint_dir: Option<PathBuf>,
        extra: Option<serde_json::Value>,
    },
    /// `sample`; replies the file written, if any.
    Sample { step: usize, dir: PathBuf },
    /// `mock_batch`: the child writes it to the IPC file.
    MockBatch { index: usize },
    /// The job is over: the child exits 0.
    Exit,
}

/// A reply: `error` when the call failed, else `value` (the call's result, `null` for none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Why the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it returned.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// The result of a step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepReply {
    /// The metrics, read back to the host.
    pub metrics: BTreeMap<String, f64>,
    /// The step's debug JSON.
    #[serde(default)]
    pub debug: Option<serde_json::Value>,
    /// `control.skip_cadence_emit`.
    #[serde(default)]
    pub skip_cadence_emit: bool,
    /// `control.backoff_seconds`.
    #[serde(default)]
    pub backoff_seconds: f64,
}
