use std::path::PathBuf;

use trainer_core::TrainerError;

/// What can go wrong in a job: a bad spec or setting, bad data, a failing hook, or the engine.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A distributed job's nodes could not work together (registering, a collective call, the
    /// start check, a trainer that does not average its gradients).
    #[error("distributed job, node {rank} of {nodes}: {message}")]
    Distributed {
        /// This node's rank.
        rank: usize,
        /// Nodes in the run.
        nodes: usize,
        /// What went wrong.
        message: String,
    },
    /// The spec file is not valid JSON.
    #[error("job spec {origin}: not valid JSON: {message}")]
    SpecSyntax {
        /// Where the spec came from.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field of the spec is missing, unknown, of the wrong type or out of range.
    #[error("job spec {origin}: `{field}`: {message}")]
    Spec {
        /// Where the spec came from.
        origin: String,
        /// The field's path (`dataset.batch_size`).
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The spec's `trainer_api_version` is not one this runtime reads.
    #[error("job spec {origin}: trainer_api_version {found:?} is not supported; this runtime supports {}", supported.join(", "))]
    UnsupportedVersion {
        /// Where the spec came from.
        origin: String,
        /// The version the spec asks for.
        found: String,
        /// The versions this runtime reads.
        supported: Vec<&'static str>,
    },
    /// No trainer of that name is registered.
    #[error("unknown trainer {name:?}: the registered trainers are {}", known.join(", "))]
    UnknownTrainer {
        /// The name asked for.
        name: String,
        /// The registered names.
        known: Vec<String>,
    },
    /// An environment variable or flag has a bad value.
    #[error("{name}: {message}")]
    Setting {
        /// The variable or flag.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A data file is missing, not parquet, or lacks a column of the right type.
    #[error("data {path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint in the checkpoints folder does not belong to this job.
    #[error("checkpoint {path} does not fit this job: {message}")]
    Resume {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The device could not be set up.
    #[error("device: {0}")]
    Device(String),
    /// A step hook of the trainer returned an error (or panicked, in `setup` or `configure`).
    #[error("step hook `{hook}` failed at step {step}: {message}")]
    Hook {
        /// The hook (`train_step`, `prepare_batch`, ...).
        hook: String,
        /// The step the job had reached.
        step: usize,
        /// The hook's error.
        message: String,
    },
    /// The engine failed (a job's own errors reach it as [`TrainerError::Program`]).
    #[error(transparent)]
    Trainer(#[from] TrainerError),
}

impl JobError {
    /// A spec error about `field`.
    pub(crate) fn spec(origin: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Spec {
            origin: origin.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A data error about `path`.
    pub(crate) fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Data {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The result of the job runtime's functions.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// What a step hook returns: any error type will do; the runtime reports its message with the
/// hook and the step.
pub type HookResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
