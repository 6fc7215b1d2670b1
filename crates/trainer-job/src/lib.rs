//! The job runtime: a training job described by a JSON spec, run on parquet data by a registered
//! trainer's step hooks, watched through its events.
//!
//! The user's step code (a [`StepHooks`] implementation) owns the math; the runtime owns the
//! lifecycle, the data feed, cadence (metrics, checkpoints, samples), the event log, resume
//! from the latest checkpoint, cancellation and failure. It drives trainer-core's engine parts:
//! the same callbacks (`Checkpointing`, `EventLog`, any user callback), checkpoint format,
//! schedules and event schema as the supervised trainer. See `docs/job.md`.
#![warn(missing_docs)]

pub mod artifacts;
mod cancel;
pub mod cli;
mod distributed;
mod error;
pub mod feed;
pub mod helpers;
mod hooks;
pub mod isolate;
mod launch;
pub mod mlp_classifier;
mod registry;
mod runtime;
mod settings;
mod spec;
mod state_dict;
mod step_peer;
mod window;

pub use cancel::CancelToken;
pub use distributed::{DistributedSpec, MAX_REPLICAS};
pub use error::{HookResult, JobError, Result};
pub use hooks::{
    mock_float_batch, mock_value, CheckpointContext, ColumnReader, JobContext, ResumeContext,
    SampleContext, Scalar, StepContext, StepControl, StepHooks, StepResult,
};
pub use launch::{launch, serve_contract, EXIT_UNSTARTED};
pub use registry::{Builtins, Plugins, Registry};
pub use runtime::{
    hook_failure, run_job, run_job_replicated, JobOutcome, EXIT_CANCELLED, RUNTIME_METRICS,
};
pub use settings::{
    JobPaths, ResolvedJob, RunOptions, ENV_CANCEL_PATH, ENV_CHECKPOINTS_DIR, ENV_EVENTS_PATH,
    ENV_PLUGIN, ENV_SAMPLES_DIR, ENV_SPEC_PATH,
};
pub use spec::{
    DatasetSpec, Isolation, JobSpec, DEFAULT_LEARNING_RATE, MAX_BATCH_SIZE, MAX_READAHEAD,
    SUPPORTED_API_VERSIONS,
};
pub use state_dict::StateDict;
pub use step_peer::StepPeer;
pub use window::{job_record, JobPayload, JobRecord, WindowTotals};

pub use arrow_array::RecordBatch;
