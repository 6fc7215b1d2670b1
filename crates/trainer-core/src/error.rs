//! The one error type of `trainer-core`.

use thiserror::Error;

/// Everything that can go wrong while configuring or running a trainer.
///
/// Each variant says what was wrong and, where there is one, what to do about it.
#[derive(Debug, Error)]
pub enum TrainerError {
    /// A [`TrainerConfig`](crate::TrainerConfig) field holds a value that cannot work.
    #[error("invalid config: `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The field's name as it is spelled in the config.
        field: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// Why it is rejected and what would be accepted.
        reason: String,
    },
    /// A learning-rate schedule parameter holds a value that cannot work.
    #[error("invalid schedule: {scheduler} `{param}` = {value}: {reason}")]
    InvalidSchedule {
        /// The scheduler's PyTorch name.
        scheduler: String,
        /// The parameter's name.
        param: String,
        /// The rejected value, formatted.
        value: String,
        /// Why it is rejected and what would be accepted.
        reason: String,
    },
    /// A checkpoint file is damaged: wrong magic bytes, truncated, or its checksum or payload
    /// does not check out.
    #[error("checkpoint {path} is damaged: {detail}")]
    CheckpointDamaged {
        /// The file (`<bytes>` for data not read from a file).
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint was written in a format version this build cannot read.
    #[error("checkpoint {path} has format version {found}; this trainer reads version {supported}.x: open it with a trainer release that reads {found}")]
    CheckpointVersion {
        /// The file.
        path: String,
        /// The file's version, `major.minor`.
        found: String,
        /// The major version this build reads.
        supported: u16,
    },
    /// A data set that the run needs was not given to the builder.
    #[error("no {split} data: give it to the builder with `{builder_method}`")]
    MissingData {
        /// The split (`train`, `valid` or `test`).
        split: &'static str,
        /// The builder method that supplies it.
        builder_method: &'static str,
    },
    /// A data set holds no items, or fewer than it claims.
    #[error("{split} data: {message}")]
    Data {
        /// The split the loader serves.
        split: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A data-loader cursor does not fit the data set it is used with.
    #[error(
        "data cursor at epoch {epoch}, batch {batch} does not fit {num_batches} batches per epoch"
    )]
    InvalidCursor {
        /// The cursor's epoch.
        epoch: usize,
        /// The cursor's batch index.
        batch: usize,
        /// Batches per epoch of the loader.
        num_batches: usize,
    },
    /// The background thread that builds batches stopped before the epoch ended.
    #[error("the batch-building thread for {split} data stopped early: {message}")]
    LoaderThread {
        /// The split the loader serves.
        split: &'static str,
        /// The panic message, if there was one.
        message: String,
    },
    /// An error of the program the engine runs, in the program's own type (the job runtime's
    /// step-hook errors, say); its message as it is.
    #[error("{0}")]
    Program(Box<dyn std::error::Error + Send + Sync>),
    /// A callback failed or asked for an error.
    #[error("callback `{callback}` failed: {message}")]
    Callback {
        /// The callback's key.
        callback: String,
        /// What went wrong.
        message: String,
    },
    /// Stored state (a callback's or a schedule's) could not be read back.
    #[error("cannot load state of `{key}`: {message}")]
    State {
        /// Whose state.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `creating directory`, ...).
        action: &'static str,
        /// The path involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is sound but does not fit this trainer: another model (a tensor's shape
    /// differs, a field is missing) or a config that changes the data order.
    #[error("checkpoint {path} does not fit this trainer: {detail}")]
    CheckpointMismatch {
        /// The file.
        path: String,
        /// What differs.
        detail: String,
    },
    /// Code the engine called panicked (a user step, a callback, a hook, a batcher); the run
    /// ended as a failure instead of taking the process down.
    #[error("a panic during {during}: {message}")]
    Panicked {
        /// What was running (`training`, `validation`, `callback EarlyStopping`, ...).
        during: String,
        /// The panic's message.
        message: String,
    },
    /// A replica of a data-parallel run failed, or the replicas stopped answering each other.
    #[error("replica {rank} of {replicas}: {message}")]
    Replica {
        /// The replica's rank (0 trains on the trainer's own thread).
        rank: usize,
        /// Replicas in the run.
        replicas: usize,
        /// What went wrong.
        message: String,
    },
    /// A folder that should hold checkpoints holds none.
    #[error("no checkpoint in {dir}: it has no `latest` pointer file")]
    NoCheckpoint {
        /// The folder.
        dir: std::path::PathBuf,
    },
}

/// `Result` with [`TrainerError`].
pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}
