//! A checkpoint folder's bookkeeping: opening it for a run (stale temporaries, an abandoned
//! continuation's entries), one save (the file, the best copy, `latest`, the index, retention's
//! deletes), and what the saves did (files written, failures). The `Checkpointing` callback
//! decides when to save; this is how.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::companion::{list_companion, remove_companion, remove_orphan_companions};
use super::names::is_step_file_name;
use super::{
    verify_file, write_latest, BestEntry, CheckpointIndex, IndexEntry, Retention, SaveReason,
    Snapshot, LATEST_FILE,
};
use crate::error::{Result, TrainerError};
use crate::fs::{write_atomic_with, TEMPORARY_PREFIX};
use crate::metric::{Best, Monitor};
use crate::state::unix_ms_now;

/// A checkpoint save that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveFailure {
    /// The file it would have written.
    pub file: String,
    /// Optimizer steps done at the snapshot.
    pub step: usize,
    /// Epochs finished at the snapshot.
    pub epoch: usize,
    /// Why it failed.
    pub reason: String,
    /// Whether it was the save at the end of training.
    pub last: bool,
}

/// What a folder's saves did, shared by the callback, its writer thread and its handles.
#[derive(Debug, Default)]
pub struct FolderBook {
    /// The folder's index as of the last finished save.
    pub index: CheckpointIndex,
    /// Every file written, in order (retention may drop them from the index later).
    pub written: Vec<IndexEntry>,
    /// Every save that failed, in order.
    pub failures: Vec<SaveFailure>,
    /// Failures not yet reported to the run.
    pub unreported: usize,
}

/// A [`FolderBook`] shared between threads.
pub type SharedBook = Arc<Mutex<FolderBook>>;

/// Locks a shared book (a panic elsewhere does not poison it for good: the book stays usable).
pub fn lock(book: &SharedBook) -> MutexGuard<'_, FolderBook> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens `dir` for a run starting at optimizer step `step`: creates it, removes temporary files
/// a killed writer left, and drops from the index the entries past `step` (they belong to an
/// abandoned continuation: a resume from an older checkpoint), pointing `latest` back at the
/// newest kept one. Returns the index the run continues.
pub fn open_folder(
    dir: &Path,
    step: usize,
    monitor: Option<&Monitor>,
    retention: &Retention,
) -> Result<CheckpointIndex> {
    std::fs::create_dir_all(dir).map_err(|source| TrainerError::Io {
        action: "creating checkpoint folder",
        path: dir.to_path_buf(),
        source,
    })?;
    remove_stale_temporaries(dir);
    remove_orphan_companions(dir);
    let mut index = CheckpointIndex::load(dir)?.unwrap_or_default();
    let before = index.checkpoints.len();
    index.checkpoints.retain(|e| e.step <= step);
    if index.best.as_ref().is_some_and(|b| b.best.step > step) {
        index.best = None;
    }
    index.monitor = monitor.cloned();
    index.retention = retention.describe();
    if index.checkpoints.len() < before {
        // `latest` must not lead a later resume into the abandoned continuation.
        index.latest = index.checkpoints.last().map(|e| e.file.clone());
        match &index.latest {
            Some(file) => write_latest(dir, file)?,
            None => {
                let _ = std::fs::remove_file(dir.join(LATEST_FILE));
            }
        }
        index.save(dir)?;
    }
    Ok(index)
}

/// One save: encode, write, point `latest` at it, update the index, apply retention. Runs on
/// the writer thread (or inline for synchronous saving).
pub struct SaveJob {
    /// The checkpoint folder.
    pub dir: PathBuf,
    /// What to save.
    pub snapshot: Arc<Snapshot>,
    /// The file's name (`epoch-EEEE-step-SSSSSS.ckpt`).
    pub file: String,
    /// The best checkpoint's name, when this save is a new best.
    pub best_file: Option<String>,
    /// The best value of the monitored metric so far.
    pub best: Option<Best>,
    /// Why it is written.
    pub reasons: Vec<SaveReason>,
    /// The monitored metric's latest value.
    pub monitored: Option<f64>,
    /// Which step checkpoints to keep after it.
    pub retention: Retention,
    /// Where the outcome is recorded.
    pub book: SharedBook,
}

impl SaveJob {
    /// Saves, recording the file written or the failure (a panic included) in the book.
    pub fn run(self) {
        // A panic in the encoding or the file system code is a failed save like any other.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write()))
            .unwrap_or_else(|payload| {
                Err(TrainerError::Panicked {
                    during: "a checkpoint save".into(),
                    message: crate::error::panic_message(payload.as_ref()),
                })
            });
        if let Err(error) = outcome {
            log::warn!(
                "checkpoint {} not saved: {error}; earlier checkpoints are intact",
                self.file
            );
            let mut book = lock(&self.book);
            book.failures.push(SaveFailure {
                file: self.file.clone(),
                step: self.snapshot.step(),
                epoch: self.snapshot.epoch(),
                reason: error.to_string(),
                last: self.reasons.contains(&SaveReason::End),
            });
            book.unreported += 1;
        }
    }

    fn write(&self) -> Result<()> {
        let path = self.dir.join(&self.file);
        let header = self.snapshot.save(&path)?;
        if self.reasons.contains(&SaveReason::End) {
            // The last checkpoint of a run is what gets collected and resumed: read it back
            // from the disk and check it whole (length and checksum) before `latest` names it.
            let found = verify_file(&path)?;
            if found != header {
                return Err(TrainerError::CheckpointDamaged {
                    path: path.display().to_string(),
                    detail: "the file read back is not the file written".into(),
                });
            }
        }
        if let Some(best_file) = &self.best_file {
            let best = self.dir.join(best_file);
            write_atomic_with(&best, |out| {
                let mut written =
                    std::fs::File::open(&path).map_err(|source| TrainerError::Io {
                        action: "reading checkpoint",
                        path: path.clone(),
                        source,
                    })?;
                std::io::copy(&mut written, out).map_err(|source| TrainerError::Io {
                    action: "writing checkpoint",
                    path: best.clone(),
                    source,
                })?;
                Ok(())
            })?;
        }
        let files = list_companion(&self.dir, &self.file)?;
        // `latest` moves only once the new file is durable, and before retention deletes
        // anything, so that a crash at any point leaves `latest` naming a whole file.
        write_latest(&self.dir, &self.file)?;
        let mut book = lock(&self.book);
        let created_unix_ms = unix_ms_now();
        let entry = IndexEntry {
            file: self.file.clone(),
            epoch: self.snapshot.epoch(),
            step: self.snapshot.step(),
            batch_in_epoch: self.snapshot.batch_in_epoch(),
            reasons: self.reasons.clone(),
            monitored: self.monitored,
            created_unix_ms,
            files,
        };
        book.written.push(entry.clone());
        let index = &mut book.index;
        index.checkpoints.retain(|e| e.file != self.file);
        index.checkpoints.push(entry);
        index.latest = Some(self.file.clone());
        if let (Some(file), Some(best)) = (&self.best_file, &self.best) {
            index.best = Some(BestEntry {
                file: file.clone(),
                best: *best,
            });
        }
        let keep = self
            .retention
            .keep(&index.checkpoints, index.monitor.as_ref());
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for (entry, keep) in index.checkpoints.drain(..).zip(keep) {
            if keep {
                kept.push(entry)
            } else {
                removed.push(entry.file)
            }
        }
        index.checkpoints = kept;
        index.save(&self.dir)?;
        for file in removed {
            remove_checkpoint_file(&self.dir, &file);
        }
        Ok(())
    }
}

/// Deletes a checkpoint file that retention dropped, and its companion folder: only a name of
/// the forms this callback writes, only a regular file (and a real folder) in `dir` itself (a
/// symlink there is left alone, so nothing outside the folder is ever deleted through it).
fn remove_checkpoint_file(dir: &Path, file: &str) {
    if !is_step_file_name(file) {
        log::warn!("retention leaves {file:?} alone: not a checkpoint file name of this folder");
        return;
    }
    remove_companion(dir, file);
    let path = dir.join(file);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() => {
            if let Err(e) = std::fs::remove_file(&path) {
                log::warn!("retention could not remove {}: {e}", path.display());
            }
        }
        Ok(_) => log::warn!(
            "retention leaves {} alone: not a regular file",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("retention could not look at {}: {e}", path.display()),
    }
}

/// Removes temporary files a killed process left behind (a folder has one writer: ours).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMPORARY_PREFIX) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
