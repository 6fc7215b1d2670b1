use std::collections::BTreeMap;
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Serialize;

use super::payload::CheckpointPayload;
use super::{decode_checked, read_checkpoint_bytes, verify};
use crate::error::Result;
use crate::state::MetricValues;

/// What a checkpoint holds, read without knowing the model: for `trainer inspect` and tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointSummary {
    /// Format version from the header, `major.minor`.
    pub format_version: String,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// The CRC-32 stored in the header; it was checked against the bytes.
    pub checksum: u32,
    /// When the snapshot was taken (milliseconds since the Unix epoch).
    pub created_unix_ms: u64,
    /// Trainer release that wrote it.
    pub trainer_version: String,
    /// burn release it was written with.
    pub burn_version: String,
    /// Epochs finished.
    pub epoch: usize,
    /// Optimizer steps done.
    pub global_step: usize,
    /// Batches consumed in the unfinished epoch.
    pub batch_in_epoch: usize,
    /// Training items seen.
    pub samples_seen: u64,
    /// The run's seed.
    pub seed: u64,
    /// Latest metric values per split.
    pub metrics: BTreeMap<String, MetricValues>,
    /// Keys of the callbacks whose state it holds.
    pub callbacks: Vec<String>,
    /// Tensors in the module record.
    pub module_tensors: usize,
    /// Bytes of tensor data in the module record.
    pub module_tensor_bytes: u64,
    /// Tensors in the optimizer record.
    pub optimizer_tensors: usize,
    /// Bytes of tensor data in the optimizer record.
    pub optimizer_tensor_bytes: u64,
}

impl CheckpointSummary {
    /// Checks and summarizes the bytes of a checkpoint file; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let header = verify(bytes, origin)?;
        let (payload, scan): (CheckpointPayload<IgnoredAny, IgnoredAny, IgnoredAny>, _) =
            decode_checked(bytes, origin)?;
        let count = |field: &str| {
            let tensors = scan.field(field);
            (tensors.len(), tensors.iter().map(|t| t.bytes()).sum())
        };
        let (module_tensors, module_tensor_bytes) = count("module");
        let (optimizer_tensors, optimizer_tensor_bytes) = count("optimizer");
        Ok(Self {
            format_version: format!("{}.{}", header.major, header.minor),
            payload_bytes: header.payload_len,
            checksum: header.checksum,
            created_unix_ms: payload.created_unix_ms,
            trainer_version: payload.trainer_version,
            burn_version: payload.burn_version,
            epoch: payload.state.epoch,
            global_step: payload.state.global_step,
            batch_in_epoch: payload.state.batch_in_epoch,
            samples_seen: payload.state.samples_seen,
            seed: payload.rng.seed,
            metrics: payload
                .metrics
                .entries()
                .map(|(split, _, values)| (split.to_string(), values.clone()))
                .collect(),
            callbacks: payload.callbacks.into_keys().collect(),
            module_tensors,
            module_tensor_bytes,
            optimizer_tensors,
            optimizer_tensor_bytes,
        })
    }

    /// Reads, checks and summarizes the checkpoint file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_checkpoint_bytes(path)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}
