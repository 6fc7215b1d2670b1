use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, Field, Schema};
use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::{
    AvailableMetrics, Callback, CallbackList, Checkpointing, EventLog, SampleInfo,
};
use trainer_core::checkpoint::{latest_in, read, EpochProgress, Retention, Snapshot};
use trainer_core::data::{mix_seed, DataCursor};
use trainer_core::engine::{
    contain, data_order_change, run_loop, Engine, StepDone, StepProgram, Throughput,
};
use trainer_core::event::{Event, EventKind, EventWriter, ResumeAt, RunStatus};
use trainer_core::metric::Split;
use trainer_core::schedule::ConstantLr;
use trainer_core::{StopReason, TrainerConfig, TrainerError};

use crate::cancel::CancelToken;
use crate::error::{JobError, Result};
use crate::feed::{Feed, FeedItem, ParquetSource};
use crate::hooks::{JobContext, SampleContext, StepContext, StepHooks};
use crate::settings::ResolvedJob;
use crate::window::{JobPayload, JobRecord, MetricWindow};

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
    // The trainer's `setup`, `configure` and `load_state_dict` run here: a panic in them is a
    // failed job like an error.
    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        JobRun::<B, H>::prepare(hooks, job, device, callbacks)
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
    let mut event = Event::new(EventKind::RunEnded, 0, 0);
    event.status = Some(RunStatus::Failed);
    event.reason = Some(message.to_string());
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
}

fn hook_error(
    hook: &str,
    step: usize,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> TrainerError + '_ {
    move |e| TrainerError::Step {
        hook: hook.to_string(),
        step,
        message: e.to_string(),
    }
}

/// A job's error as the engine's: an engine error as it is, anything else (data, files) as the
/// job's.
fn engine_error(error: JobError) -> TrainerError {
    match error {
        JobError::Trainer(error) => error,
        other => TrainerError::Callback {
            callback: "job".into(),
            message: other.to_string(),
        },
    }
}

impl<'a, B: AutodiffBackend, H: StepHooks<B>> JobRun<'a, B, H> {
    fn prepare(
        mut hooks: H,
        job: &'a ResolvedJob,
        device: B::Device,
        extra: Vec<Box<dyn Callback>>,
    ) -> Result<Self> {
        let spec = &job.spec;
        let origin = "(resolved spec)";
        let source = match spec.mock_batches {
            Some(_) => None,
            None => Some(Arc::new(ParquetSource::open(
                &spec.dataset.parquet_paths,
                spec.dataset.columns.as_deref(),
            )?)),
        };
        let mock_schema = Arc::new(Schema::new(
            spec.dataset
                .columns
                .iter()
                .flatten()
                .map(|c| Field::new(c, DataType::Float32, false))
                .collect::<Vec<_>>(),
        ));
        let (schema, rows) = match &source {
            Some(source) => (source.schema(), source.rows()),
            None => (
                mock_schema.clone(),
                spec.mock_batches.unwrap_or(0) * spec.dataset.batch_size,
            ),
        };
        let state = {
            let ctx = JobContext {
                spec,
                schema,
                rows,
                columns: source
                    .as_deref()
                    .map(|s| s as &dyn crate::hooks::ColumnReader),
            };
            hooks.setup(&ctx).map_err(hook_error("setup", 0))?;
            hooks
                .configure(&ctx, &device)
                .map_err(hook_error("configure", 0))?
        };
        let learning_rate = spec.learning_rate();
        let schedule = match spec.schedule_config(origin)? {
            Some(config) => config.build(learning_rate)?,
            None => Box::new(ConstantLr::constant(learning_rate)),
        };
        let config = TrainerConfig::new(learning_rate)
            .with_epochs(None)
            .with_max_steps(Some(spec.max_steps))
            .with_batch_size(spec.dataset.batch_size)
            .with_seed(spec.seed)
            .with_log_every(spec.metric_every)
            .with_validation(None);
        let checkpointing = Checkpointing::new(&job.paths.checkpoints_dir)
            .every_n_steps(spec.checkpoint_every)
            .save_on_error(false)
            .require_final_save(true)
            .retention(match spec.keep_checkpoints {
                Some(n) => Retention::LastN(n),
                None => Retention::All,
            });
        let events_dir = job
            .paths
            .events_path
            .parent()
            .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
        let event_log = EventLog::new(events_dir)
            .events_path(&job.paths.events_path)
            .csv(false)
            .run_config(serde_json::json!({"job": spec, "trainer": job.trainer}))
            .checkpoints(checkpointing.handle());
        let mut list: Vec<Box<dyn Callback>> = extra;
        list.push(Box::new(checkpointing));
        list.push(Box::new(event_log));
        let callbacks = CallbackList::new(list)?;
        let mut available = AvailableMetrics::default();
        available.set(
            Split::Train,
            hooks
                .metric_names()
                .into_iter()
                .chain(RUNTIME_METRICS.iter().map(|s| s.to_string())),
        );
        let per_epoch = match &source {
            Some(source) => source.batches_per_epoch(spec.dataset.batch_size),
            None => spec.mock_batches.unwrap_or(1),
        };
        let mut run = Self {
            job,
            hooks,
            state,
            device,
            source,
            mock_schema,
            cursor: DataCursor::epoch_start(0),
            batches: None,
            cancel: CancelToken::new(),
            engine: Engine::new(config, schedule, callbacks, available, Some(per_epoch)),
            window: MetricWindow::default(),
            busy: Duration::ZERO,
            waiting: Duration::ZERO,
            throughput: Throughput::default(),
            window_clock: (Duration::ZERO, Duration::ZERO),
        };
        if let Some(file) = latest_in(&job.paths.checkpoints_dir)? {
            run.resume(&file)?;
        }
        Ok(run)
    }

    /// Loads a checkpoint of this job: the trainer's state dict and extra, the schedule,
    /// callbacks, metrics window and data cursor.
    fn resume(&mut self, file: &Path) -> Result<()> {
        let payload: JobPayload = read(file)?;
        let mismatch = |message: String| JobError::Resume {
            path: file.to_path_buf(),
            message,
        };
        let record = &payload.optimizer;
        if record.run_id != self.job.spec.run_id {
            return Err(mismatch(format!("it belongs to run {:?}, this job is {:?}; give this job its own checkpoints folder", record.run_id, self.job.spec.run_id)));
        }
        if record.trainer != self.job.trainer {
            return Err(mismatch(format!(
                "it was written by trainer {:?}, this job runs {:?}",
                record.trainer, self.job.trainer
            )));
        }
        if let Some((field, theirs, ours)) = data_order_change(&payload.config, &self.engine.config)
        {
            // The spec spells the batch size under `dataset`.
            let field = if field == "batch_size" {
                "dataset.batch_size"
            } else {
                field
            };
            return Err(mismatch(format!("`{field}` is {theirs} in the checkpoint and {ours} in the spec; it fixes the data order")));
        }
        let step = payload.state.global_step;
        self.hooks
            .load_state_dict(&mut self.state, payload.module, &self.device)
            .map_err(hook_error("load_state_dict", step))?;
        if let Some(extra) = payload.optimizer.extra {
            self.hooks
                .load_checkpoint(&mut self.state, extra)
                .map_err(hook_error("load_checkpoint", step))?;
        }
        self.engine.schedule.load_state(payload.schedule)?;
        self.engine.callbacks.load_states(payload.callbacks)?;
        self.window = MetricWindow::from_totals(payload.optimizer.window);
        self.engine.latest = payload.metrics;
        self.cursor = payload.cursor;
        self.engine.state = payload.state;
        log::info!(
            "resumed {} at step {step} from {}",
            self.job.spec.run_id,
            file.display()
        );
        Ok(())
    }

    /// Emits the window's means (with the runtime's metrics) as the latest training reading.
    fn emit_metrics(&mut self, lr: f64) {
        if self.window.is_empty() {
            return;
        }
        let mut values = self.window.take_means();
        values.insert("lr".into(), lr);
        if let Some(steps_per_second) = self.throughput.take().steps_per_second() {
            values.insert("steps_per_second".into(), steps_per_second);
        }
        // The window's own share: the session's start (the first batch) weighs only on the
        // first window, and a slow patch shows where it happens.
        let (busy, waiting) = (
            self.busy - self.window_clock.0,
            self.waiting - self.window_clock.1,
        );
        let total = (busy + waiting).as_secs_f64();
        values.insert(
            "data_wait_fraction".into(),
            if total > 0.0 {
                waiting.as_secs_f64() / total
            } else {
                0.0
            },
        );
        self.window_clock = (self.busy, self.waiting);
        self.engine
            .latest
            .set(Split::Train, self.engine.state.global_step, values);
    }

    fn wait_fraction(&self) -> f64 {
        let total = (self.busy + self.waiting).as_secs_f64();
        if total > 0.0 {
            self.waiting.as_secs_f64() / total
        } else {
            0.0
        }
    }

    fn next_batch(&mut self) -> Result<FeedItem> {
        match self.batches.as_mut().expect("batches made in `begin`") {
            Batches::Parquet(feed) => feed.next_batch(),
            Batches::Mock { per_epoch, cursor } => {
                let ctx = JobContext {
                    spec: &self.job.spec,
                    schema: self.mock_schema.clone(),
                    rows: *per_epoch * self.job.spec.dataset.batch_size,
                    columns: None,
                };
                let batch = self
                    .hooks
                    .mock_batch(&ctx, cursor.batch)
                    .map_err(hook_error("mock_batch", self.engine.state.global_step))?;
                let item = FeedItem {
                    batch,
                    epoch: cursor.epoch,
                    index: cursor.batch,
                    last: cursor.batch + 1 >= *per_epoch,
                };
                *cursor = item.next_cursor();
                Ok(item)
            }
        }
    }

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
        })
    }

    /// One step: the next batch, `prepare_batch`, `train_step`, the counters and the window.
    fn job_step(&mut self) -> Result<StepDone> {
        let spec = &self.job.spec;
        let step = self.engine.state.global_step;
        let waited = Instant::now();
        let item = self.next_batch()?;
        let started = Instant::now();
        self.waiting += started - waited;
        let rows = item.batch.num_rows();
        let lr = self.engine.schedule.lr();
        let emits = (step + 1).is_multiple_of(spec.metric_every);
        let prepared = self
            .hooks
            .prepare_batch(&mut self.state, &item.batch, &self.device)
            .map_err(hook_error("prepare_batch", step))?;
        let ctx = StepContext {
            step,
            epoch: item.epoch,
            learning_rate: lr,
            seed: mix_seed(spec.seed, step as u64),
            emits_metrics: emits,
        };
        let result = self
            .hooks
            .train_step(&mut self.state, prepared, &ctx)
            .map_err(hook_error("train_step", step))?;
        self.busy += started.elapsed();
        self.cursor = item.next_cursor();
        let state = &mut self.engine.state;
        state.global_step += 1;
        state.epoch = self.cursor.epoch;
        state.batch_in_epoch = self.cursor.batch;
        state.samples_seen += rows as u64;
        self.engine.schedule.step();
        self.window.add(result.metrics);
        self.throughput.step();
        if let Some(debug) = &result.debug {
            log::debug!("step {}: {debug}", self.engine.state.global_step);
        }
        let skip_cadence = result.control.skip_cadence_emit;
        if !skip_cadence
            && self
                .engine
                .state
                .global_step
                .is_multiple_of(spec.metric_every)
        {
            self.emit_metrics(lr);
        }
        Ok(StepDone {
            optimizer_step: true,
            skip_cadence,
            backoff_seconds: result.control.backoff_seconds,
        })
    }

    fn sample(&mut self) -> Result<()> {
        let dir = self.job.paths.samples_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| JobError::Io {
            action: "creating samples folder",
            path: dir.clone(),
            source,
        })?;
        let step = self.engine.state.global_step;
        let file = self
            .hooks
            .sample(&mut self.state, &SampleContext { step, dir: &dir })
            .map_err(hook_error("sample", step))?;
        if let Some(file) = file {
            let info = SampleInfo {
                step,
                file: Some(file.display().to_string()),
            };
            self.engine
                .with_callbacks(|callbacks, ctx| callbacks.run_sample(ctx, &info))?;
        }
        Ok(())
    }
}

impl<B: AutodiffBackend, H: StepHooks<B>> StepProgram for JobRun<'_, B, H> {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn snapshot(&mut self) -> trainer_core::Result<Snapshot> {
        let step = self.engine.state.global_step;
        let module = self
            .hooks
            .state_dict(&self.state)
            .map_err(hook_error("state_dict", step))?;
        let extra = self
            .hooks
            .save_checkpoint(&self.state)
            .map_err(hook_error("save_checkpoint", step))?;
        let record = JobRecord {
            run_id: self.job.spec.run_id.clone(),
            trainer: self.job.trainer.clone(),
            window: self.window.totals(),
            extra,
        };
        let payload: JobPayload = self
            .engine
            .checkpoint_meta(self.cursor, EpochProgress::default())
            .with_records(module, record, None);
        Ok(Snapshot::from_payload(payload))
    }

    fn step(&mut self) -> trainer_core::Result<StepDone> {
        self.job_step().map_err(engine_error)
    }

    fn cancelled(&self) -> Option<String> {
        self.cancel.reason()
    }

    fn begin(&mut self) -> trainer_core::Result<()> {
        let spec = &self.job.spec;
        let batches = match &self.source {
            Some(source) => {
                let per_epoch = source.batches_per_epoch(spec.dataset.batch_size);
                if self.cursor.batch > per_epoch {
                    return Err(engine_error(JobError::Resume {
                        path: self.job.paths.checkpoints_dir.clone(),
                        message: format!("its data cursor is at batch {} of an epoch; this data has {per_epoch} batches", self.cursor.batch),
                    }));
                }
                Batches::Parquet(Feed::start(
                    source.clone(),
                    spec.seed,
                    spec.dataset.batch_size,
                    spec.dataset.readahead,
                    self.cursor,
                ))
            }
            None => Batches::Mock {
                per_epoch: spec.mock_batches.unwrap_or(1),
                cursor: self.cursor,
            },
        };
        self.batches = Some(batches);
        self.throughput.restart();
        Ok(())
    }

    fn after_checkpoint(&mut self) -> trainer_core::Result<()> {
        let step = self.engine.state.global_step;
        if self
            .job
            .spec
            .sample_every
            .is_some_and(|every| step.is_multiple_of(every))
        {
            self.sample().map_err(engine_error)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> trainer_core::Result<()> {
        // A window the cadence did not close at the end (max_steps not a multiple). A cancelled
        // run keeps it: the checkpoint holds it and the resumed run continues it.
        if !matches!(
            self.engine.state.stop_reason,
            Some(StopReason::Cancelled(_))
        ) {
            let lr = self.engine.schedule.lr();
            self.emit_metrics(lr);
        }
        // Ends the feed's thread.
        self.batches = None;
        Ok(())
    }
}

/// A hook result's error as a boxed error (for trainers' helper functions).
pub fn hook_failure(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    message.into().into()
}
