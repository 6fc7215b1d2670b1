use serde::{Deserialize, Serialize};

/// A position in the stream of batches: the epoch (from 0) and the next batch in it (from 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    /// The epoch, counted from 0.
    pub epoch: usize,
    /// The index of the next batch to deliver in that epoch.
    pub batch: usize,
}

impl DataCursor {
    /// The start of `epoch`.
    pub fn epoch_start(epoch: usize) -> Self {
        Self { epoch, batch: 0 }
    }
}
