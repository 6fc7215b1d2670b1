//! The artifact upload bridge: every checkpoint, its companion folder's files and every sample
//! go to a sink (a folder, a user command such as a cloud CLI) on a background thread, with
//! retries and backoff, never blocking a step; each outcome is an `artifact_uploaded` or
//! `artifact_failed` event, and the last uploads finish before `run_ended`. Names are
//! idempotent (`checkpoints/<file>`, `samples/<file>`) and a ledger in the run folder remembers
//! what was uploaded, so a resumed job uploads nothing twice under the same name.

mod command;
mod dir;
mod ledger;
mod spec;
mod uploader;

pub use command::CommandSink;
pub use dir::{DirSink, MANIFEST_FILE};
pub use ledger::LEDGER_FILE;
pub use spec::{ArtifactsSpec, RetryPolicy, MAX_ATTEMPTS};
pub use uploader::{UploadSource, Uploads};

use std::path::{Path, PathBuf};

/// One file to upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// Its name at the sink: `checkpoints/epoch-0001-step-000500.ckpt`,
    /// `checkpoints/epoch-0001-step-000500.artifacts/adapter.safetensors`,
    /// `samples/step-000500.json`.
    pub name: String,
    /// The file on disk.
    pub path: PathBuf,
    /// What it is: `checkpoint`, `checkpoint_file` (a companion folder's) or `sample`.
    pub kind: UploadKind,
    /// The step it belongs to.
    pub step: usize,
    /// Epochs finished at that step.
    pub epoch: usize,
}

/// What an uploaded file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// A checkpoint file.
    Checkpoint,
    /// A file of a checkpoint's companion folder.
    CheckpointFile,
    /// A sample.
    Sample,
}

impl UploadKind {
    /// The kind as the manifest and the command sink's environment spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Checkpoint => "checkpoint",
            UploadKind::CheckpointFile => "checkpoint_file",
            UploadKind::Sample => "sample",
        }
    }
}

/// A file's identity at upload time: its size and SHA-256, computed once by the uploader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl Digest {
    /// Reads `path` in pieces and hashes it.
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        use sha2::{Digest as _, Sha256};
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        Ok(Self {
            bytes,
            sha256: format!("{:x}", hasher.finalize()),
        })
    }
}

/// Where uploads go. The runtime drives it on its upload thread (never the user's step code),
/// one file at a time, and retries a failed upload as the spec's [`RetryPolicy`] says; an
/// upload of a name already there with the same bytes must succeed without harm.
pub trait ArtifactSink: Send {
    /// Uploads one file; the error says why it failed.
    fn upload(&mut self, upload: &Upload, digest: &Digest) -> Result<(), String>;
}
