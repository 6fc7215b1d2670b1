//! What the peers of one process share while they run: whether the run failed, and how many of
//! their collective calls are waiting. burn-collective's calls block until every peer has made
//! the same call; once one peer has failed (or was dropped), the others' calls would wait for
//! it until their timeout. A watcher thread resets the collective server while a call waits in a
//! failed run, which ends the call with an error at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use burn::tensor::backend::Backend;

use super::collective::{self, CollectiveLease};

/// How often the watcher looks.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// The shared state of a process's peers (see the module's doc). It holds the process's
/// collective lease: the next run cannot start while a peer, or the watcher in a reset, is
/// still at work.
pub(crate) struct PeerGroup {
    failed: AtomicBool,
    pending: AtomicUsize,
    _lease: CollectiveLease,
}

impl PeerGroup {
    /// A group with its watcher for backend `B`; the watcher ends when the group is dropped.
    pub(crate) fn start<B: Backend>(lease: CollectiveLease) -> Result<Arc<Self>, String> {
        let group = Arc::new(Self {
            failed: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            _lease: lease,
        });
        let watched: Weak<Self> = Arc::downgrade(&group);
        std::thread::Builder::new()
            .name("trainer-peer-watcher".into())
            .spawn(move || loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(group) = watched.upgrade() else {
                    return;
                };
                if group.failed.load(Ordering::SeqCst) && group.pending.load(Ordering::SeqCst) > 0 {
                    collective::release_blocked::<B>();
                }
            })
            .map_err(|e| format!("cannot start the peers' watcher: {e}"))?;
        Ok(group)
    }

    /// Marks the run as failed: waiting calls are ended from now on.
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Whether a peer failed or was dropped before the end.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Runs `call` (a collective call) counted as waiting; a call in a failed run is refused.
    pub(crate) fn call<T>(&self, call: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        if self.failed() {
            return Err("another peer of this process failed".into());
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        let result = call();
        self.pending.fetch_sub(1, Ordering::SeqCst);
        result
    }
}
