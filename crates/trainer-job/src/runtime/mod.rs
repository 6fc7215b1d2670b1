//! The job runtime: a job is a program of trainer-core's engine loop whose steps are the
//! trainer's hooks. `prepare.rs` makes the run (data, hooks, callbacks, resume), `program.rs`
//! is its steps; this file starts a job and says how it ended.

mod peers;
mod prepare;
mod program;
mod replicas;

pub(crate) use prepare::JobData;
use replicas::ReplicaSeed;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::Schema;
use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::Callback;
use trainer_core::data::DataCursor;
use trainer_core::engine::{contain, run_loop, Engine, StepProgram, Throughput};
use trainer_core::event::{Event, EventKind, EventWriter, ResumeAt, RunStatus};
use trainer_core::{StopReason, TrainerError};

use crate::artifacts::Uploads;
use crate::cancel::CancelToken;
use crate::error::{JobError, Result};
use crate::feed::{Feed, ParquetSource};
use crate::hooks::StepHooks;
use crate::settings::ResolvedJob;
use crate::window::MetricWindow;

/// The exit status of a cancelled job (a completed one exits 0, a failed one 1, a job that
/// could not start 2).
pub const EXIT_CANCELLED: i32 = 130;

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// `completed`, `failed` or `cancelled`.
    pub status: RunStatus,
    /// Steps done.
    pub step: usize,
    /// Why it stopped, unless it completed.
    pub reason: Option<String>,
    /// The share of this session's step time spent waiting for data.
    pub data_wait_fraction: f64,
    /// How each child process that died ended, when an isolated job restarted it (oldest
    /// first; empty in process).
    pub restarts: Vec<String>,
}

impl JobOutcome {
    /// The process exit status for this outcome: 0 completed, 1 failed, [`EXIT_CANCELLED`].
    pub fn exit_code(&self) -> i32 {
        match self.status {
            RunStatus::Completed => 0,
            RunStatus::Failed => 1,
            RunStatus::Cancelled => EXIT_CANCELLED,
        }
    }
}

/// Metrics the runtime adds to each emitted window.
pub const RUNTIME_METRICS: [&str; 3] = ["lr", "steps_per_second", "data_wait_fraction"];

/// Where batches come from.
enum Batches {
    Parquet(Feed),
    Mock {
        per_epoch: usize,
        cursor: DataCursor,
    },
}

/// Runs a job with `hooks` on `device` until `max_steps`, a cancellation or an error; resumes
/// from the latest checkpoint in the checkpoints folder if there is one. `callbacks` join the
/// runtime's (checkpointing and the event log), e.g. an `EarlyStopping` on a step metric.
///
/// An error before the run starts (bad data, a failing `setup` or `configure`, a checkpoint that
/// does not fit) and an error during it both end with a `failed` event and an `Ok` outcome
/// whose status is `failed`; the checkpoints already written stay.
///
/// A job whose spec asks for several `replicas` needs [`run_job_replicated`].
pub fn run_job<B, H>(
    hooks: H,
    job: &ResolvedJob,
    device: B::Device,
    cancel: &CancelToken,
    callbacks: Vec<Box<dyn Callback>>,
) -> Result<JobOutcome>
where
    B: AutodiffBackend,
    H: StepHooks<B>,
{
    run_with_seeds(hooks, Vec::new(), job, device, cancel, callbacks)
}

/// [`run_job`] for a job of several `replicas` (the spec's): `hooks` on `device` is rank 0,
/// which runs the job; each of `replicas` (one fewer than the spec's count) trains on its own
/// thread and device with its own trainer instance (made like `hooks`), starting from rank 0's
/// state. See `docs/job.md`, "Replicas".
pub fn run_job_replicated<B, H>(
    hooks: H,
    replicas: Vec<(H, B::Device)>,
    job: &ResolvedJob,
    device: B::Device,
    cancel: &CancelToken,
    callbacks: Vec<Box<dyn Callback>>,
) -> Result<JobOutcome>
where
    B: AutodiffBackend,
    H: StepHooks<B> + Send + 'static,
{
    let seeds = replicas
        .into_iter()
        .map(|(hooks, device)| ReplicaSeed::new(hooks, device))
        .collect();
    run_with_seeds(hooks, seeds, job, device, cancel, callbacks)
}

fn run_with_seeds<B, H>(
    hooks: H,
    seeds: Vec<ReplicaSeed<B>>,
    job: &ResolvedJob,
    device: B::Device,
    cancel: &CancelToken,
    callbacks: Vec<Box<dyn Callback>>,
) -> Result<JobOutcome>
where
    B: AutodiffBackend,
    H: StepHooks<B>,
{
    // The trainer's `setup`, `configure` and `load_state_dict` run here: a panic in them is a
    // failed job like an error.
    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        JobRun::<B, H>::prepare(hooks, seeds, job, device, callbacks)
    }))
    .unwrap_or_else(|payload| {
        Err(JobError::Trainer(TrainerError::Panicked {
            during: "the job's preparation (setup, configure, resume)".into(),
            message: trainer_core::panic_message(payload.as_ref()),
        }))
    });
    let mut run = match prepared {
        Ok(run) => run,
        Err(error) => {
            report_unstarted(&job.paths.events_path, &error)?;
            return Ok(JobOutcome::unstarted(&error));
        }
    };
    run.run(cancel)
}

impl JobOutcome {
    /// The outcome of a job that failed before its first step.
    pub(crate) fn unstarted(error: &JobError) -> Self {
        JobOutcome {
            status: RunStatus::Failed,
            step: 0,
            reason: Some(error.to_string()),
            data_wait_fraction: 0.0,
            restarts: Vec::new(),
        }
    }
}

/// Writes `run_ended` (failed) to the events file for a job that could not start.
pub(crate) fn report_unstarted(path: &Path, error: &JobError) -> Result<()> {
    log::error!("{error}");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| JobError::Io {
            action: "creating events folder",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let message = error.to_string();
    let lines = std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let mut writer = EventWriter::open(path, ResumeAt::Lines(lines))?;
    let kind = EventKind::RunEnded {
        status: RunStatus::Failed,
        reason: Some(message.to_string()),
    };
    let event = Event::new(kind, 0, 0);
    writer.write(&event)?;
    Ok(())
}

/// A job between `prepare` and the end of `run`: a program of trainer-core's engine loop, whose
/// steps are the trainer's hooks.
struct JobRun<'a, B: AutodiffBackend, H: StepHooks<B>> {
    job: &'a ResolvedJob,
    hooks: H,
    state: H::State,
    device: B::Device,
    source: Option<Arc<ParquetSource>>,
    mock_schema: Arc<Schema>,
    /// Where the feed goes on from: the next batch's epoch and index.
    cursor: DataCursor,
    /// The batches, from `begin` on.
    batches: Option<Batches>,
    cancel: CancelToken,
    engine: Engine,
    window: MetricWindow<B>,
    /// This session's time in steps and waiting for data, and steps since the last emission.
    busy: Duration,
    waiting: Duration,
    throughput: Throughput,
    /// Time in steps and waiting when the current window started.
    window_clock: (Duration, Duration),
    /// The metric whose window means step a plateau schedule; `None` when the schedule steps
    /// per optimizer step.
    plateau_monitor: Option<String>,
    /// The artifact uploads, when the spec names a sink.
    uploads: Option<Uploads>,
    /// Replicas 1, 2, ... of a job of several `replicas`, started at the end of `prepare`.
    replicas: Vec<replicas::ReplicaHandle<B>>,
    /// The other replicas and nodes of a data-parallel job, once joined (in `begin`).
    peers: Option<peers::JobPeers<B>>,
}

fn hook_error(
    hook: &str,
    step: usize,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> TrainerError + '_ {
    move |e| {
        let message = e.to_string();
        TrainerError::Program(Box::new(JobError::Hook {
            hook: hook.to_string(),
            step,
            message,
        }))
    }
}

/// A job's error as the engine's: an engine error as it is, anything else (data, files, hooks)
/// as the program's own.
fn engine_error(error: JobError) -> TrainerError {
    match error {
        JobError::Trainer(error) => error,
        other => TrainerError::Program(Box::new(other)),
    }
}

impl<B: AutodiffBackend, H: StepHooks<B>> JobRun<'_, B, H> {
    /// Runs the job to its end and says how it ended.
    fn run(&mut self, cancel: &CancelToken) -> Result<JobOutcome> {
        self.cancel = cancel.clone();
        self.engine.start_clock();
        let result = contain("the job's steps", || run_loop(self));
        self.engine.stop_clock();
        if let Err(error) = result {
            let error = self.fail(error);
            log::error!("job {} failed: {error}", self.job.spec.run_id);
            return Ok(JobOutcome {
                status: RunStatus::Failed,
                step: self.engine.state.global_step,
                reason: Some(error.to_string()),
                data_wait_fraction: self.wait_fraction(),
                restarts: Vec::new(),
            });
        }
        let (status, reason) = match &self.engine.state.stop_reason {
            Some(StopReason::Cancelled(how)) => (RunStatus::Cancelled, Some(how.clone())),
            Some(StopReason::MaxStepsReached) | None => (RunStatus::Completed, None),
            // As the event log's `run_ended` says it.
            Some(StopReason::Requested(reason)) => (RunStatus::Completed, Some(reason.clone())),
            Some(other) => (RunStatus::Completed, Some(other.to_string())),
        };
        Ok(JobOutcome {
            status,
            step: self.engine.state.global_step,
            reason,
            data_wait_fraction: self.wait_fraction(),
            restarts: Vec::new(),
        })
    }
}

/// A hook result's error as a boxed error (for trainers' helper functions).
pub fn hook_failure(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    message.into().into()
}
