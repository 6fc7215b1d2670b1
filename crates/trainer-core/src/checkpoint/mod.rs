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

mod companion;
mod encoded_match;
mod file;
mod folder;
mod header;
mod index;
mod lent_load;
mod names;
mod payload;
mod record;
mod record_check;
mod retention;
mod scan;
mod scanned;
mod skeleton;
mod snapshot;
mod summary;
mod writer;

pub use crate::fs::{
    open_regular_file, read_regular_file, write_atomic, write_atomic_with, TEMPORARY_PREFIX,
};
pub use companion::{
    companion_dir, companion_dir_name, list_companion, remove_companion, StagedCompanion,
    MAX_COMPANION_FILES,
};
pub use file::{
    decode, decode_checked, encode, read, read_checkpoint_bytes, scan_and_decode, verify,
    verify_beside, verify_file, write_payload, MAX_CHECKPOINT_BYTES,
};
pub use folder::{lock, open_folder, FolderBook, SaveFailure, SaveJob, SharedBook};
pub use header::{Header, FORMAT_MAJOR, FORMAT_MINOR, HEADER_LEN, MAGIC};
pub(crate) use index::write_latest;
pub use index::{
    latest_in, BestEntry, CheckpointIndex, IndexEntry, SaveReason, INDEX_FILE, LATEST_FILE,
    MAX_INDEX_BYTES, MAX_LATEST_BYTES,
};
pub use lent_load::{load_and_decode, LoadedAndDecoded, LoadedPayload};
pub use names::{
    best_file_name, is_best_file_name, is_checkpoint_file_name, is_step_file_name, step_file_name,
};
pub use payload::{CheckpointPayload, EpochProgress, RngState, BURN_VERSION, TRAINER_VERSION};
pub use record::HostRecord;
pub use record::{check_optimizer_host, load_module_host};
pub use record_check::{
    check_module_record, check_optimizer_record, keyed_record_tensors, parameter_specs,
    record_tensors, ParamSpec,
};
pub use retention::{Retention, RetentionPolicy};
pub use scan::{scan_payload, valid_param_id};
pub use scanned::{
    ElementKind, LentBins, LentTensor, PayloadScan, RecordSource, ScannedTensor, TensorDtype,
    MAX_DEPTH, MAX_ELEMENTS, MAX_RANK,
};
pub use snapshot::{CheckpointSink, Snapshot};
pub use summary::CheckpointSummary;
pub use writer::CheckpointWriter;
