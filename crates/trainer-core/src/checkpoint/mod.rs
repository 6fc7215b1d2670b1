//! Checkpoints: one file per checkpoint, a fixed header then a MessagePack payload, written
//! atomically; the writer thread that saves in the background; the index, `latest` pointer and
//! retention policies of a checkpoint folder.
//!
//! The layout is in `docs/checkpoint-format.md`. [`encode`] and [`decode`] turn any serde
//! payload into the bytes of a file and back; [`write_atomic`] puts bytes on disk so that a
//! crash leaves either the old file or the new one, never a mix; [`read`] loads and checks a file.
//! A trainer's [`Snapshot`] holds a [`CheckpointPayload`] copied to the host; the
//! [`Checkpointing`](crate::callback::Checkpointing) callback decides when to take one and
//! where it goes.

mod file;
mod header;
mod index;
mod payload;
mod record;
mod retention;
mod snapshot;
mod summary;
mod writer;

pub use file::{decode, encode, read, verify, write_atomic, TEMPORARY_PREFIX};
pub use header::{Header, FORMAT_MAJOR, FORMAT_MINOR, HEADER_LEN, MAGIC};
pub use index::{latest_in, BestEntry, CheckpointIndex, IndexEntry, SaveReason, INDEX_FILE, LATEST_FILE};
pub(crate) use index::write_latest;
pub use payload::{CheckpointPayload, EpochProgress, RngState, BURN_VERSION, TRAINER_VERSION};
pub use record::HostRecord;
pub use record::{load_module_host, parameter_shapes, shape_mismatch};
pub use retention::{Retention, RetentionPolicy};
pub use snapshot::Snapshot;
pub use summary::CheckpointSummary;
pub use writer::CheckpointWriter;
