//! The handle a program keeps on a [`Checkpointing`](super::Checkpointing) callback while the
//! trainer owns it: ask for a save from any thread, read what the saves did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::checkpoint::{lock, CheckpointIndex, FolderBook, IndexEntry, SaveFailure, SharedBook};

/// State shared by the callback, its writer thread and its handles.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) save_now: AtomicBool,
    pub(super) book: SharedBook,
}

impl Shared {
    pub(super) fn book(&self) -> std::sync::MutexGuard<'_, FolderBook> {
        lock(&self.book)
    }
}

/// A handle on a [`Checkpointing`](crate::callback::Checkpointing) callback that the trainer owns: ask for a save from any
/// thread, read what was written.
#[derive(Clone)]
pub struct CheckpointHandle {
    pub(super) shared: Arc<Shared>,
}

impl CheckpointHandle {
    /// Asks for a checkpoint at the next safe point (after the current batch's step).
    pub fn save_now(&self) {
        self.shared.save_now.store(true, Ordering::SeqCst);
    }

    /// Checkpoint files written so far (a new best writes two files; it counts once).
    pub fn written(&self) -> usize {
        self.shared.book().written.len()
    }

    /// The checkpoints written after the first `seen` ones, in order.
    pub fn written_since(&self, seen: usize) -> Vec<IndexEntry> {
        self.shared
            .book()
            .written
            .iter()
            .skip(seen)
            .cloned()
            .collect()
    }

    /// The messages of the saves that failed.
    pub fn failures(&self) -> Vec<String> {
        self.shared
            .book()
            .failures
            .iter()
            .map(|f| f.reason.clone())
            .collect()
    }

    /// The saves that failed after the first `seen` ones, in order.
    pub fn failures_since(&self, seen: usize) -> Vec<SaveFailure> {
        self.shared
            .book()
            .failures
            .iter()
            .skip(seen)
            .cloned()
            .collect()
    }

    /// The folder's index as of the last finished save.
    pub fn index(&self) -> CheckpointIndex {
        self.shared.book().index.clone()
    }
}
