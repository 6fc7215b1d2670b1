//! A job's steps as the engine loop drives them: the next batch, `prepare_batch`,
//! `train_step`, the metrics window, samples, snapshots of the trainer's state dict.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::{Artifact, Hook};
use trainer_core::checkpoint::{step_file_name, EpochProgress, Snapshot, StagedCompanion};
use trainer_core::data::mix_seed;
use trainer_core::engine::{Engine, StepDone, StepProgram};
use trainer_core::metric::Split;
use trainer_core::StopReason;

use super::{engine_error, hook_error, Batches, JobRun};
use crate::artifacts::{Upload, UploadKind};
use crate::error::{JobError, Result};
use crate::feed::{Feed, FeedItem};
use crate::hooks::{CheckpointContext, JobContext, SampleContext, StepContext, StepHooks};
use crate::window::{JobPayload, JobRecord};

impl<B: AutodiffBackend, H: StepHooks<B>> JobRun<'_, B, H> {
    /// Emits the window's means (with the runtime's metrics) as the latest training reading,
    /// and steps a plateau schedule with the monitored metric's mean.
    fn emit_metrics(&mut self, lr: f64) -> Result<()> {
        if self.window.is_empty() {
            return Ok(());
        }
        let mut values = self.window.take_means();
        if let Some(monitor) = &self.plateau_monitor {
            let Some(&mean) = values.get(monitor) else {
                return Err(JobError::spec(
                    "(resolved spec)",
                    "hyperparams.lr_schedule_monitor",
                    format!(
                        "the plateau schedule watches {monitor:?}, but the window that ended \
                         at step {} holds no such metric; the step reports: {}",
                        self.engine.state.global_step,
                        values.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            self.engine.schedule.step_with_metric(mean);
        }
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
        Ok(())
    }

    pub(super) fn wait_fraction(&self) -> f64 {
        let total = (self.busy + self.waiting).as_secs_f64();
        if total > 0.0 {
            self.waiting.as_secs_f64() / total
        } else {
            0.0
        }
    }

    /// The next step's batches, one per local replica in rank order: in a data-parallel job,
    /// this node's part of the next round.
    fn next_round(&mut self) -> Result<Vec<FeedItem>> {
        let local = self.job.spec.replicas;
        let mut round = Vec::with_capacity(local);
        loop {
            let item = self.next_item()?;
            if self.owner(&item) == Some(round.len()) {
                round.push(item);
                if round.len() == local {
                    return Ok(round);
                }
            } else {
                // Another node's batch: its place still moves the cursor on.
                self.cursor = item.next_cursor();
            }
        }
    }

    fn next_item(&mut self) -> Result<FeedItem> {
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

    /// One step: the next batch, `prepare_batch`, `train_step`, the counters and the window.
    fn job_step(&mut self) -> Result<StepDone> {
        let spec = &self.job.spec;
        let step = self.engine.state.global_step;
        let waited = Instant::now();
        let round = self.next_round()?;
        let started = Instant::now();
        self.waiting += started - waited;
        let rows: usize = round.iter().map(|item| item.batch.num_rows()).sum();
        let lr = self.engine.schedule.lr();
        let emits = (step + 1).is_multiple_of(spec.metric_every);
        let base_seed = mix_seed(spec.seed, step as u64);
        let ctx = StepContext {
            step,
            epoch: round[0].epoch,
            learning_rate: lr,
            seed: self.step_seed(0, base_seed),
            emits_metrics: emits,
            peer: self.step_peer(),
        };
        self.dispatch(&round, &ctx, base_seed)?;
        let own = self
            .hooks
            .prepare_batch(&mut self.state, &round[0].batch, &self.device)
            .map_err(hook_error("prepare_batch", step))
            .and_then(|prepared| {
                self.hooks
                    .train_step(&mut self.state, prepared, &ctx)
                    .map_err(hook_error("train_step", step))
            })
            .map_err(JobError::Trainer);
        drop(ctx);
        let (result, replica_metrics) = self.finish_round(own, step)?;
        self.busy += started.elapsed();
        self.cursor = round[round.len() - 1].next_cursor();
        let state = &mut self.engine.state;
        state.global_step += 1;
        state.epoch = self.cursor.epoch;
        state.batch_in_epoch = self.cursor.batch;
        state.samples_seen += rows as u64;
        // A plateau schedule steps once per window, in `emit_metrics`.
        if self.plateau_monitor.is_none() {
            self.engine.schedule.step();
        }
        self.window.add(result.metrics);
        for metrics in replica_metrics {
            self.window.add(super::peers::host_metrics(metrics));
        }
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
            self.emit_metrics(lr)?;
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
            if let (Some(uploads), Some(name)) = (&self.uploads, file.file_name()) {
                uploads.queue(Upload {
                    name: format!("samples/{}", name.to_string_lossy()),
                    path: file.clone(),
                    kind: UploadKind::Sample,
                    step,
                    epoch: self.engine.state.epoch,
                });
            }
            let artifact = Artifact {
                kind: "sample".into(),
                step,
                file: Some(file.display().to_string()),
            };
            self.engine
                .with_callbacks(|callbacks, ctx| callbacks.run_artifact(ctx, &artifact))?;
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
        // The checkpoint's own folder is filled and put in place before the file is written:
        // a file in the index always has its whole folder beside it.
        let state = &self.engine.state;
        let file = step_file_name(state.epoch, step);
        // A folder that cannot be staged or put in place is the checkpoint folder failing: the
        // save fails with it and is reported as such; the step goes on.
        let staged = StagedCompanion::new(&self.job.paths.checkpoints_dir, &file)
            .inspect_err(|e| log::warn!("no artifacts folder for checkpoint {file}: {e}"))
            .ok();
        let ctx = CheckpointContext {
            step,
            output_dir: staged.as_ref().map(StagedCompanion::path),
            is_final: step >= self.job.spec.max_steps || state.stop_reason.is_some(),
        };
        let extra = self
            .hooks
            .save_checkpoint(&self.state, &ctx)
            .map_err(hook_error("save_checkpoint", step))?;
        if let Some(Err(e)) = staged.map(StagedCompanion::commit) {
            log::warn!("the artifacts of checkpoint {file} were not put in place: {e}");
        }
        let record = JobRecord {
            run_id: self.job.spec.run_id.clone(),
            trainer: self.job.trainer.clone(),
            window: self.window.totals(),
            extra,
            nodes: self.job.spec.distributed.as_ref().map(|d| d.nodes),
            replicas: (self.job.spec.replicas > 1).then_some(self.job.spec.replicas),
        };
        let payload: JobPayload = self
            .engine
            .checkpoint_meta(self.cursor, EpochProgress::default())
            .with_records(module, None, None)
            .with_extension(record);
        Ok(Snapshot::from_payload(payload))
    }

    fn step(&mut self) -> trainer_core::Result<StepDone> {
        self.job_step().map_err(engine_error)
    }

    fn cancelled(&self) -> Option<String> {
        match &self.peers {
            // On several machines, a cancellation the nodes agreed on (`agree_requests`).
            Some(peers) if self.job.spec.distributed.is_some() => peers.agreed_cancel.clone(),
            _ => self.cancel.reason(),
        }
    }

    fn agree_requests(&mut self, hook: Hook) -> trainer_core::Result<()> {
        self.agree_node_requests(hook).map_err(engine_error)
    }

    fn begin(&mut self) -> trainer_core::Result<()> {
        self.join_peers().map_err(engine_error)?;
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
            self.emit_metrics(lr).map_err(engine_error)?;
        }
        // Ends the feed's thread.
        self.batches = None;
        self.leave_peers().map_err(engine_error)
    }
}
