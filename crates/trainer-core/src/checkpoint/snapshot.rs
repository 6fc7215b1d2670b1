use std::sync::Mutex;

use serde::Serialize;

use super::encode;
use crate::error::Result;

/// A checkpoint taken from a trainer and copied to the host, not yet encoded: cheap to take on
/// the training thread, encoded (and written) wherever its receiver likes, e.g. on a background
/// thread. Shared between receivers through an `Arc`.
pub struct Snapshot {
    epoch: usize,
    step: usize,
    batch_in_epoch: usize,
    payload: Mutex<Box<dyn EncodePayload>>,
}

trait EncodePayload: Send {
    fn encode(&self) -> Result<Vec<u8>>;
}

impl<T: Serialize + Send> EncodePayload for T {
    fn encode(&self) -> Result<Vec<u8>> {
        encode(self)
    }
}

impl Snapshot {
    /// Wraps a payload taken at `epoch` (epochs finished), `step` (optimizer steps done) and
    /// `batch_in_epoch`.
    pub fn new<P: Serialize + Send + 'static>(epoch: usize, step: usize, batch_in_epoch: usize, payload: P) -> Self {
        Self { epoch, step, batch_in_epoch, payload: Mutex::new(Box::new(payload)) }
    }

    /// Epochs finished when the snapshot was taken.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimizer steps done when the snapshot was taken.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Batches consumed in the unfinished epoch.
    pub fn batch_in_epoch(&self) -> usize {
        self.batch_in_epoch
    }

    /// The bytes of the checkpoint file (header and payload).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let payload = self.payload.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        payload.encode()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("epoch", &self.epoch)
            .field("step", &self.step)
            .field("batch_in_epoch", &self.batch_in_epoch)
            .finish_non_exhaustive()
    }
}
