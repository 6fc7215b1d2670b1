//! The lock around burn's backend RNG, which is global to the process: seeding it and drawing
//! from it (a forward pass with dropout) must not interleave between trainers or replicas on
//! other threads. Waiting for it can be bounded: a replica stuck in its forward pass holds it,
//! and the others must then fail after the collective timeout rather than wait for ever.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The process's backend-RNG lock.
pub(crate) static BACKEND_RNG: RngLock = RngLock {
    held: Mutex::new(false),
    freed: Condvar::new(),
};

/// A lock with a bounded wait (`std`'s `Mutex` has none).
pub(crate) struct RngLock {
    held: Mutex<bool>,
    freed: Condvar,
}

/// Holds the [`RngLock`] until dropped.
pub(crate) struct RngGuard(&'static RngLock);

impl RngLock {
    /// Takes the lock, waiting at most `limit` when given.
    pub(crate) fn acquire(&'static self, limit: Option<Duration>) -> Result<RngGuard, String> {
        let deadline = limit.map(|limit| Instant::now() + limit);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        while *held {
            held = match deadline {
                None => self
                    .freed
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(format!(
                            "waited {:?} for the backend's random stream: another replica or trainer of this process is stuck in its forward pass",
                            limit.unwrap_or_default()
                        ));
                    }
                    self.freed
                        .wait_timeout(held, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        *held = true;
        Ok(RngGuard(self))
    }
}

impl Drop for RngGuard {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.freed.notify_one();
    }
}
