//! Making a job's run: the data, the trainer's `setup` and `configure`, the schedule, the
//! runtime's callbacks (checkpointing, the event log), and the resume from the latest checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema};
use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::{AvailableMetrics, Callback, CallbackList, Checkpointing, EventLog};
use trainer_core::checkpoint::{companion_dir, latest_in, read, Retention};
use trainer_core::data::DataCursor;
use trainer_core::engine::{data_order_change, Engine, Throughput};
use trainer_core::metric::Split;
use trainer_core::schedule::ConstantLr;
use trainer_core::TrainerConfig;

use super::replicas::{ReplicaSeed, ReplicaStart, Resumed};
use super::{hook_error, JobRun, RUNTIME_METRICS};
use crate::artifacts::{ArtifactSink, ArtifactsSpec, CommandSink, DirSink, Uploads, LEDGER_FILE};
use crate::cancel::CancelToken;
use crate::error::{JobError, Result};
use crate::feed::ParquetSource;
use crate::hooks::{JobContext, ResumeContext, StepHooks};
use crate::settings::ResolvedJob;
use crate::window::{JobPayload, MetricWindow};

impl<'a, B: AutodiffBackend, H: StepHooks<B>> JobRun<'a, B, H> {
    pub(super) fn prepare(
        mut hooks: H,
        seeds: Vec<ReplicaSeed<B>>,
        job: &'a ResolvedJob,
        device: B::Device,
        extra: Vec<Box<dyn Callback>>,
    ) -> Result<Self> {
        let spec = &job.spec;
        let origin = "(resolved spec)";
        if seeds.len() + 1 != spec.replicas {
            return Err(JobError::spec(
                origin,
                "replicas",
                format!(
                    "the spec asks for {} replicas but the job was given {} device(s): pass one \
                     device per replica (`trainer run --replica-devices`, or run_job_replicated)",
                    spec.replicas,
                    seeds.len() + 1
                ),
            ));
        }
        let JobData {
            source,
            mock_schema,
            schema,
            rows,
        } = JobData::open(spec)?;
        let state = {
            let ctx = JobContext {
                spec,
                schema: schema.clone(),
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
        let uploads = spec.artifacts.as_ref().map(|artifacts| {
            Uploads::start(
                artifact_sink(artifacts),
                artifacts.retry().clone(),
                events_dir.join(LEDGER_FILE),
                checkpointing.handle(),
                job.paths.checkpoints_dir.clone(),
            )
        });
        let mut event_log = EventLog::new(events_dir)
            .events_path(&job.paths.events_path)
            .csv(false)
            .run_config(serde_json::json!({"job": spec, "trainer": job.trainer}))
            .checkpoints(checkpointing.handle());
        if let Some(uploads) = &uploads {
            event_log = event_log.source(uploads.source());
        }
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
            plateau_monitor: None,
            uploads,
            replicas: Vec::new(),
            peers: None,
        };
        if run.engine.schedule.needs_metric() {
            run.plateau_monitor = Some(spec.schedule_monitor(origin)?);
        }
        let resumed = match latest_in(&job.paths.checkpoints_dir)? {
            Some(file) => Some(run.resume(&file)?),
            None => None,
        };
        if !seeds.is_empty() {
            run.start_replicas(seeds, schema, rows, resumed)?;
        }
        Ok(run)
    }

    /// Starts replicas 1, 2, ... from rank 0's state (and the checkpoint it resumed from), and
    /// waits until each has made its own.
    fn start_replicas(
        &mut self,
        seeds: Vec<ReplicaSeed<B>>,
        schema: arrow_schema::SchemaRef,
        rows: usize,
        resumed: Option<Resumed>,
    ) -> Result<()> {
        let step = self.engine.state.global_step;
        let dict = self
            .hooks
            .state_dict(&self.state)
            .map_err(hook_error("state_dict", step))?;
        for (k, seed) in seeds.into_iter().enumerate() {
            let start = ReplicaStart {
                spec: self.job.spec.clone(),
                source: self.source.clone(),
                schema: schema.clone(),
                rows,
                dict: dict.clone(),
                resumed: resumed.clone(),
            };
            let handle = seed
                .start(k + 1, start)
                .map_err(|e| self.peer_error(k + 1, format!("cannot start its thread: {e}")))?;
            self.replicas.push(handle);
        }
        let deadline = std::time::Instant::now() + crate::distributed::peer_timeout(&self.job.spec);
        for (k, replica) in self.replicas.iter().enumerate() {
            replica
                .reply(deadline)
                .map_err(|(_, m)| self.peer_error(k + 1, m))?;
        }
        Ok(())
    }

    /// Loads a checkpoint of this job: the trainer's state dict and extra, the schedule,
    /// callbacks, metrics window and data cursor. Returns what replicas need of it.
    fn resume(&mut self, file: &Path) -> Result<Resumed> {
        let mut payload: JobPayload = read(file)?;
        let mismatch = |message: String| JobError::Resume {
            path: file.to_path_buf(),
            message,
        };
        // Format 1.2 keeps the record in `extension`; 1.0 and 1.1 kept it in `optimizer`.
        let record = payload
            .extension
            .take()
            .or(payload.optimizer.take())
            .ok_or_else(|| {
                mismatch("it holds no job record: the job runtime did not write it".into())
            })?;
        if record.run_id != self.job.spec.run_id {
            return Err(mismatch(format!("it belongs to run {:?}, this job is {:?}; give this job its own checkpoints folder", record.run_id, self.job.spec.run_id)));
        }
        if record.trainer != self.job.trainer {
            return Err(mismatch(format!(
                "it was written by trainer {:?}, this job runs {:?}",
                record.trainer, self.job.trainer
            )));
        }
        let replicas = self.job.spec.replicas;
        if record.replicas.unwrap_or(1) != replicas {
            return Err(mismatch(format!(
                "it was written by a job of {} replica(s), this job has {replicas}; the count \
                 fixes which batches a step takes, so resume with the same `replicas`",
                record.replicas.unwrap_or(1)
            )));
        }
        let nodes = self.job.spec.distributed.as_ref().map_or(1, |d| d.nodes);
        if record.nodes.unwrap_or(1) != nodes {
            return Err(mismatch(format!(
                "it was written by a job of {} node(s), this job has {nodes}; every node's data \
                 cursor is its own shard's, so resume with the same `distributed.nodes`",
                record.nodes.unwrap_or(1)
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
        let companion = file
            .parent()
            .zip(file.file_name().and_then(|n| n.to_str()))
            .and_then(|(dir, name)| companion_dir(dir, name));
        let ctx = ResumeContext {
            step,
            checkpoint_file: file,
            checkpoint_dir: companion.as_deref(),
        };
        let resumed = Resumed {
            step,
            extra: record.extra.clone(),
            file: file.to_path_buf(),
            dir: companion.clone(),
        };
        self.hooks
            .load_checkpoint(&mut self.state, record.extra, &ctx)
            .map_err(hook_error("load_checkpoint", step))?;
        self.engine
            .load_states(payload.schedule, payload.callbacks)?;
        self.window = MetricWindow::from_totals(record.window);
        self.engine.latest = payload.metrics;
        self.cursor = payload.cursor;
        self.engine.state = payload.state;
        log::info!(
            "resumed {} at step {step} from {}",
            self.job.spec.run_id,
            file.display()
        );
        Ok(resumed)
    }
}

/// The sink the spec's `artifacts` section names.
fn artifact_sink(spec: &ArtifactsSpec) -> Box<dyn ArtifactSink> {
    match spec {
        ArtifactsSpec::Dir { path, .. } => Box::new(DirSink::new(path)),
        ArtifactsSpec::Command {
            argv,
            timeout_seconds,
            ..
        } => Box::new(CommandSink::new(
            argv.clone(),
            Duration::from_secs_f64(*timeout_seconds),
        )),
    }
}

/// A job's data as the trainer's `setup` sees it: the parquet source (none in mock runs), the
/// schema of the batches and the rows of an epoch.
pub(crate) struct JobData {
    pub source: Option<Arc<ParquetSource>>,
    /// The schema of mock batches: `dataset.columns` as `Float32`.
    pub mock_schema: Arc<Schema>,
    pub schema: arrow_schema::SchemaRef,
    pub rows: usize,
}

impl JobData {
    /// Opens and checks the spec's data (nothing is read in mock runs).
    pub fn open(spec: &crate::spec::JobSpec) -> Result<Self> {
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
        Ok(Self {
            source,
            mock_schema,
            schema,
            rows,
        })
    }

    /// The context of `setup`, `configure` and `mock_batch`.
    pub fn context<'a>(&'a self, spec: &'a crate::spec::JobSpec) -> JobContext<'a> {
        JobContext {
            spec,
            schema: self.schema.clone(),
            rows: self.rows,
            columns: self
                .source
                .as_deref()
                .map(|s| s as &dyn crate::hooks::ColumnReader),
        }
    }
}
