//! A deterministic, resumable data loader over burn's `Dataset` and `Batcher`.
//!
//! The order of an epoch is a permutation drawn from `(seed, epoch)`, so it can be rebuilt at any
//! time; a [`DataCursor`] says where in that order a run is, and
//! [`DataLoader::iter`] starts right there without building the batches before it. Items are
//! fetched on a background thread, a bounded number of batches ahead of the consumer.

mod cursor;
mod handoff;
mod loader;
mod order;
mod source;

pub use cursor::DataCursor;
pub use loader::{Batches, DataLoader, DataLoaderBuilder, Shard};
pub use order::{epoch_order, mix_seed};
pub use source::{BatchSource, DatasetBatches, PreparedBatch};
