use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::names::{is_best_file_name, is_checkpoint_file_name, is_step_file_name};
use crate::error::{Result, TrainerError};
use crate::fs::{read_regular_file, write_atomic};
use crate::metric::{Best, Monitor};

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
    /// The files of its companion folder (`epoch-EEEE-step-SSSSSS.artifacts/`), relative to
    /// it; empty when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// The best checkpoint of the monitored metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestEntry {
    /// File name within the folder (`best-<metric>.ckpt`).
    pub file: String,
    /// The metric's value and when it was seen (`value`, `step`, `epoch` in the JSON, beside
    /// `file`).
    #[serde(flatten)]
    pub best: Best,
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
    /// Reads `dir/index.json`; `None` when there is none. The index is untrusted: a file name in
    /// it that is not one the checkpointing callback writes (a path, `../x`, another file) is
    /// dropped from it with a warning, so that nothing outside the folder is read or deleted.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(INDEX_FILE);
        let bytes = match read_small_file(&path, MAX_INDEX_BYTES)? {
            Some(bytes) => bytes,
            None => return Ok(None),
        };
        let mut index: Self =
            serde_json::from_slice(&bytes).map_err(|e| TrainerError::CheckpointDamaged {
                path: path.display().to_string(),
                detail: format!("the index does not parse: {e}"),
            })?;
        index.drop_foreign_names(&path);
        Ok(Some(index))
    }

    /// Drops every entry whose file name is not a checkpoint name, with a warning.
    fn drop_foreign_names(&mut self, path: &Path) {
        let warn = |name: &str| {
            log::warn!(
                "{}: ignoring entry {name:?}, which is not a checkpoint file name of this folder",
                path.display()
            );
        };
        self.checkpoints.retain(|entry| {
            let ours = is_step_file_name(&entry.file);
            if !ours {
                warn(&entry.file);
            }
            ours
        });
        if self
            .latest
            .as_deref()
            .is_some_and(|name| !is_checkpoint_file_name(name))
        {
            warn(self.latest.as_deref().unwrap_or_default());
            self.latest = None;
        }
        if self
            .best
            .as_ref()
            .is_some_and(|best| !is_best_file_name(&best.file))
        {
            warn(self.best.as_ref().map_or("", |b| b.file.as_str()));
            self.best = None;
        }
    }

    /// Adds `reason` to the newest checkpoint if it was taken at this point (`epoch` epochs,
    /// `step` steps, `batch_in_epoch` batches into the next); whether it was.
    pub fn add_reason_to_latest_at(
        &mut self,
        epoch: usize,
        step: usize,
        batch_in_epoch: usize,
        reason: SaveReason,
    ) -> bool {
        let latest = self.latest.clone();
        let entry = self
            .checkpoints
            .iter_mut()
            .rev()
            .find(|e| Some(&e.file) == latest.as_ref());
        match entry {
            Some(e) if (e.epoch, e.step, e.batch_in_epoch) == (epoch, step, batch_in_epoch) => {
                if !e.reasons.contains(&reason) {
                    e.reasons.push(reason);
                }
                true
            }
            _ => false,
        }
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
    let Some(bytes) = read_small_file(&pointer, MAX_LATEST_BYTES)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let name = text.trim();
    if !is_checkpoint_file_name(name) {
        return Err(TrainerError::CheckpointDamaged {
            path: pointer.display().to_string(),
            detail: format!(
                "it should name a checkpoint file of this folder (`epoch-EEEE-step-SSSSSS.ckpt` or `best-<metric>.ckpt`), it holds {name:?}"
            ),
        });
    }
    Ok(Some(dir.join(name)))
}

/// The largest `index.json` read.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// The largest `latest` pointer file read.
pub const MAX_LATEST_BYTES: u64 = 4096;

/// A small regular file's bytes, `None` when it does not exist.
fn read_small_file(path: &Path, cap: u64) -> Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TrainerError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(_) => {}
    }
    read_regular_file(path, cap, "reading").map(Some)
}

/// Points `dir/latest` at `file`, atomically.
pub(crate) fn write_latest(dir: &Path, file: &str) -> Result<()> {
    write_atomic(&dir.join(LATEST_FILE), format!("{file}\n").as_bytes())
}
