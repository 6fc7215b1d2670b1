use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::write_atomic;
use crate::error::{Result, TrainerError};
use crate::metric::Monitor;

/// The index file of a checkpoint folder.
pub const INDEX_FILE: &str = "index.json";
/// The pointer file naming the newest checkpoint of a folder (a small text file, not a symlink,
/// so it works on every OS).
pub const LATEST_FILE: &str = "latest";

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveReason {
    /// The step cadence.
    EveryNSteps,
    /// The epoch cadence.
    EveryNEpochs,
    /// A new best value of the monitored metric.
    Best,
    /// The end of training.
    End,
    /// An emergency save before an error was returned.
    Error,
    /// Asked for: `save_now`, or a callback's `Control::save_checkpoint`.
    Requested,
}

/// One kept checkpoint file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// File name within the folder.
    pub file: String,
    /// Epochs finished.
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: usize,
    /// Batches consumed in the unfinished epoch.
    pub batch_in_epoch: usize,
    /// Why it was written.
    pub reasons: Vec<SaveReason>,
    /// The monitored metric's latest value when it was written, if there was one.
    pub monitored: Option<f64>,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
}

/// The best checkpoint of the monitored metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestEntry {
    /// File name within the folder (`best-<metric>.ckpt`).
    pub file: String,
    /// The metric's value.
    pub value: f64,
    /// Optimizer steps done when it was measured.
    pub step: usize,
    /// Epochs finished when it was measured.
    pub epoch: usize,
}

/// What a checkpoint folder keeps and why: written (atomically) after each save.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointIndex {
    /// The monitored metric, if any.
    pub monitor: Option<Monitor>,
    /// The retention policy, in words.
    pub retention: String,
    /// The newest checkpoint (also in the `latest` file).
    pub latest: Option<String>,
    /// The best checkpoint of the monitored metric.
    pub best: Option<BestEntry>,
    /// The kept step checkpoints, oldest first.
    pub checkpoints: Vec<IndexEntry>,
}

impl CheckpointIndex {
    /// Reads `dir/index.json`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(INDEX_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(TrainerError::Io { action: "reading", path, source }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| TrainerError::CheckpointDamaged {
            path: path.display().to_string(),
            detail: format!("the index does not parse: {e}"),
        })
    }

    /// Writes `dir/index.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("the index serializes");
        write_atomic(&dir.join(INDEX_FILE), text.as_bytes())
    }
}

/// The checkpoint `dir/latest` names, or `None` when the folder has no `latest` file (a run
/// that never saved, or no folder at all).
pub fn latest_in(dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = dir.join(LATEST_FILE);
    let text = match std::fs::read_to_string(&pointer) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TrainerError::Io { action: "reading", path: pointer, source }),
    };
    let name = text.trim();
    let plain = !name.is_empty() && Path::new(name).file_name().is_some_and(|f| f == name);
    if !plain {
        return Err(TrainerError::CheckpointDamaged {
            path: pointer.display().to_string(),
            detail: format!("it should hold a checkpoint file name, it holds {name:?}"),
        });
    }
    Ok(Some(dir.join(name)))
}

/// Points `dir/latest` at `file`, atomically.
pub(crate) fn write_latest(dir: &Path, file: &str) -> Result<()> {
    write_atomic(&dir.join(LATEST_FILE), format!("{file}\n").as_bytes())
}
