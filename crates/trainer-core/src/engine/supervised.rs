use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::run_loop::{run_loop, Engine, StepDone, StepProgram};
use super::{clip_gradients, contain, FitReport, Trainer};
use crate::callback::{Hook, LatestMetrics};
use crate::checkpoint::{
    check_optimizer_host, latest_in, load_module_host, read_checkpoint_bytes, scan_payload, verify,
    write_atomic, CheckpointPayload, EpochProgress, HostRecord, Snapshot, HEADER_LEN,
};
use crate::config::{ScheduleInterval, TrainerConfig};
use crate::data::{mix_seed, Batches, DataCursor, DataLoader};
use crate::error::{Result, TrainerError};
use crate::metric::{MetricAccumulator, Metrics, Split, Totals};
use crate::state::{BestMetric, EpochSummary, MetricValues, TrainingState};
use crate::step::{TrainStep, ValidStep};

/// The supervised trainer: the user's model gives the loss, the trainer does backward,
/// gradient accumulation and clipping, the optimizer step and the learning-rate schedule, and
/// owns the loop around them.
///
/// Made with [`SupervisedTrainer::builder`].
pub struct SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    pub(super) model: Option<M>,
    pub(super) optimizer: O,
    /// State, config, schedule, callbacks and latest metrics; drives `fit`.
    pub(super) engine: Engine,
    pub(super) train: Option<DataLoader<B, TB>>,
    pub(super) valid: Option<DataLoader<B::InnerBackend, VB>>,
    pub(super) test: Option<DataLoader<B::InnerBackend, VB>>,
    pub(super) device: B::Device,
    pub(super) progress: Progress<B::InnerBackend>,
    /// The current epoch's batches, from the cursor on (made at its first step).
    pub(super) epoch_batches: Option<Batches<B, TB>>,
    /// Gradients of micro-batches that wait for an optimizer step.
    pub(super) accumulator: GradientsAccumulator<M>,
    /// Weights a callback asked to keep (references: burn tensors are immutable values).
    pub(super) kept: Option<M>,
    /// `k` of the top-k accuracy, if counted.
    pub(super) top_k: Option<usize>,
    /// User metrics: all of them (validation and test), and those computed on training batches.
    pub(super) metrics: Metrics<B::InnerBackend>,
    pub(super) train_metrics: Metrics<B::InnerBackend>,
    /// The confusion matrix of the last validation and test pass.
    pub(super) confusion: std::collections::BTreeMap<Split, crate::metric::ConfusionMatrix>,
}

/// The unfinished epoch: training metrics not yet folded into the epoch summary, and micro-batches
/// whose gradients wait for an optimizer step.
pub(super) struct Progress<B: burn::tensor::backend::Backend> {
    window: MetricAccumulator<B>,
    epoch_totals: Totals,
    epoch_started: Instant,
    epoch_seconds_before: f64,
    pending: usize,
    /// When the current logging window started (this session), and the steps and samples
    /// since: for the throughput metrics.
    window_started: Instant,
    window_steps: usize,
    window_samples: u64,
}

impl<B: burn::tensor::backend::Backend> Default for Progress<B> {
    fn default() -> Self {
        Self {
            window: MetricAccumulator::new(),
            epoch_totals: Totals::default(),
            epoch_started: Instant::now(),
            epoch_seconds_before: 0.0,
            pending: 0,
            window_started: Instant::now(),
            window_steps: 0,
            window_samples: 0,
        }
    }
}

impl<B: burn::tensor::backend::Backend> Progress<B> {
    fn epoch_seconds(&self) -> f64 {
        self.epoch_seconds_before + self.epoch_started.elapsed().as_secs_f64()
    }
}

/// The host form of the model's record.
type ModuleHost<B, M> = <<M as Module<B>>::Record as HostRecord<B>>::Host;
/// The host form of the optimizer's record.
type OptimizerHost<B, M, O> = <<O as Optimizer<M, B>>::Record as HostRecord<B>>::Host;

/// Serialises seeding and forward passes of all trainers in the process (see `run_epoch`).
static BACKEND_RNG: Mutex<()> = Mutex::new(());

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
    O: Optimizer<M, B>,
    O::Record: HostRecord<B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// The model in its current state.
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the model is only taken during an optimizer step")
    }

    /// Ends the trainer and hands back the trained model.
    pub fn into_model(self) -> M {
        self.model
            .expect("the model is only taken during an optimizer step")
    }

    /// The learning rate the next optimizer step uses.
    pub fn learning_rate(&self) -> f64 {
        self.engine.schedule.lr()
    }

    /// The confusion matrix of the last `valid` or `test` pass of a classifier.
    pub fn confusion_matrix(&self, split: Split) -> Option<&crate::metric::ConfusionMatrix> {
        self.confusion.get(&split)
    }

    /// Weights a callback asked to keep (e.g. `EarlyStopping`'s best), if any.
    pub fn kept_weights(&self) -> Option<&M> {
        self.kept.as_ref()
    }

    /// The latest metrics read back, per split.
    pub fn latest_metrics(&self) -> &LatestMetrics {
        &self.engine.latest
    }

    /// The device the model trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Takes a checkpoint of the run as it stands: the model and optimizer records (full
    /// precision), the state, config, schedule, callback states, metrics and data cursor. It
    /// holds references to the tensors; the host copy and the encoding happen in
    /// [`Snapshot::encode`], which can run on another thread while training goes on.
    ///
    /// Snapshots are taken between optimizer steps; in the middle of an accumulated step
    /// (micro-batches whose gradients wait) this is an error.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        if self.progress.pending > 0 {
            return Err(TrainerError::State {
                key: "snapshot".into(),
                message: format!(
                    "{} micro-batches wait for an optimizer step; snapshots are taken between steps",
                    self.progress.pending
                ),
            });
        }
        let state = &self.engine.state;
        let cursor = DataCursor {
            epoch: state.epoch,
            batch: state.batch_in_epoch,
        };
        let progress = EpochProgress {
            window: self.progress.window.read_totals(),
            epoch: self.progress.epoch_totals.clone(),
            seconds: if state.batch_in_epoch > 0 {
                self.progress.epoch_seconds()
            } else {
                0.0
            },
        };
        let meta = self.engine.checkpoint_meta(cursor, progress);
        // References to the tensors only: the host copy happens when the snapshot is encoded.
        Ok(Snapshot::from_records::<B, _, _>(
            meta,
            self.model().clone().into_record(),
            self.optimizer.to_record(),
            self.kept.clone().map(Module::into_record),
        ))
    }

    /// Writes a checkpoint of the run to `path`, synchronously and atomically.
    pub fn save_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.snapshot()?.encode()?;
        write_atomic(path.as_ref(), &bytes)
    }

    /// Resumes from a checkpoint file, or from the checkpoint a folder's `latest` file names;
    /// returns the file loaded. The next `fit` continues at the exact batch after it.
    pub fn resume_from(&mut self, from: impl AsRef<Path>) -> Result<PathBuf> {
        let from = from.as_ref();
        let file = if from.is_dir() {
            latest_in(from)?.ok_or_else(|| TrainerError::NoCheckpoint {
                dir: from.to_path_buf(),
            })?
        } else {
            from.to_path_buf()
        };
        self.load_checkpoint(&file)?;
        Ok(file)
    }

    /// Loads a checkpoint file: model, optimizer, state, schedule, callback states, metrics and
    /// data cursor. Checked first: the header, checksum and version; then that the payload is
    /// this model's and optimizer's, that every tensor has the model's shape (the error names the
    /// tensor), and that the config keeps the data order (seed, batch size, `drop_last`,
    /// gradient accumulation). Those checks leave the trainer untouched when they fail.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let bytes = read_checkpoint_bytes(path)?;
        verify(&bytes, &origin)?;
        let damaged = |detail: String| TrainerError::CheckpointDamaged {
            path: origin.clone(),
            detail,
        };
        let mismatch = |detail: String| TrainerError::CheckpointMismatch {
            path: origin.clone(),
            detail,
        };
        scan_payload(&bytes[HEADER_LEN..]).map_err(damaged)?;
        let decoded = catch_unwind(|| {
            rmp_serde::from_slice::<CheckpointPayload<ModuleHost<B, M>, OptimizerHost<B, M, O>>>(
                &bytes[HEADER_LEN..],
            )
        })
        .map_err(|_| damaged("the payload holds data the decoder cannot read".into()))?;
        let payload = decoded.map_err(|e| {
            mismatch(format!(
                "its payload does not decode as this model's and optimizer's records: {e}"
            ))
        })?;
        drop(bytes);
        self.check_config(&payload.config).map_err(mismatch)?;
        if let Some(loader) = &self.train {
            if payload.cursor.batch > loader.num_batches() {
                return Err(mismatch(format!(
                    "its data cursor is at batch {} of an epoch; this training data has {} batches",
                    payload.cursor.batch,
                    loader.num_batches()
                )));
            }
        }
        let device = self.device.clone();
        let model = load_module_host::<B, M>(self.model().clone(), payload.module, &device)
            .map_err(|detail| mismatch(format!("its module record does not fit: {detail}")))?;
        let kept = match payload.kept_module {
            None => None,
            Some(host) => Some(
                load_module_host::<B, M>(self.model().clone(), host, &device)
                    .map_err(|detail| mismatch(format!("its kept weights do not fit: {detail}")))?,
            ),
        };
        check_optimizer_host::<B, M, _>(&payload.optimizer, &model)
            .map_err(|detail| mismatch(format!("its optimizer record does not fit: {detail}")))?;
        let current = self.optimizer.clone();
        let record = payload.optimizer;
        let optimizer = catch_unwind(AssertUnwindSafe(|| {
            current.load_record(<O::Record as HostRecord<B>>::from_host(record, &device))
        }))
        .map_err(|_| mismatch("its optimizer record holds tensor data burn cannot load".into()))?;
        self.engine
            .load_states(payload.schedule, payload.callbacks)?;
        self.model = Some(model);
        self.kept = kept;
        self.optimizer = optimizer;
        let mut state = payload.state;
        state.stop_reason = None;
        self.engine.state = state;
        self.engine.latest = payload.metrics;
        self.progress = Progress {
            window: MetricAccumulator::from_totals(payload.progress.window)
                .with_top_k(self.top_k)
                .with_metrics(self.train_metrics.clone()),
            epoch_totals: payload.progress.epoch,
            epoch_started: Instant::now(),
            epoch_seconds_before: payload.progress.seconds,
            ..Progress::default()
        };
        Ok(())
    }

    /// Settings that change which batch comes next must match the checkpoint's.
    fn check_config(&self, saved: &TrainerConfig) -> std::result::Result<(), String> {
        let ours = &self.engine.config;
        let differs = |field: &str, theirs: String, mine: String| {
            Err(format!(
                "`{field}` is {theirs} in the checkpoint and {mine} in this trainer; it fixes the data order, so the run would not continue where it stopped"
            ))
        };
        if saved.seed != ours.seed {
            return differs("seed", saved.seed.to_string(), ours.seed.to_string());
        }
        if saved.batch_size != ours.batch_size {
            return differs(
                "batch_size",
                saved.batch_size.to_string(),
                ours.batch_size.to_string(),
            );
        }
        if saved.drop_last != ours.drop_last {
            return differs(
                "drop_last",
                saved.drop_last.to_string(),
                ours.drop_last.to_string(),
            );
        }
        if saved.gradient_accumulation != ours.gradient_accumulation {
            return differs(
                "gradient_accumulation",
                saved.gradient_accumulation.to_string(),
                ours.gradient_accumulation.to_string(),
            );
        }
        Ok(())
    }

    fn run_eval(&mut self, split: Split) -> Result<MetricValues> {
        let (loader, method) = match split {
            Split::Test => (self.test.clone(), "test_data"),
            _ => (self.valid.clone(), "valid_data"),
        };
        let loader = loader.ok_or(TrainerError::MissingData {
            split: split.as_str(),
            builder_method: method,
        })?;
        let (begin, end) = match split {
            Split::Test => (Hook::TestBegin, Hook::TestEnd),
            _ => (Hook::ValidationBegin, Hook::ValidationEnd),
        };
        self.hook(begin)?;
        let model = self.model().valid();
        let mut metrics = MetricAccumulator::<B::InnerBackend>::new()
            .with_confusion()
            .with_top_k(self.top_k)
            .with_metrics(self.metrics.clone());
        for batch in loader.iter(DataCursor::epoch_start(0))? {
            let output = ValidStep::step(&model, batch?);
            metrics.update(&output);
        }
        let mut values = metrics.read();
        if let Some(confusion) = metrics.read_confusion() {
            values.extend(confusion.macro_values());
            self.confusion.insert(split, confusion);
        }
        self.engine
            .latest
            .set(split, self.engine.state.global_step, values.clone());
        if split == Split::Valid {
            self.track_best(&values);
            if self.engine.schedule.needs_metric() {
                // A missing loss counts as no improvement.
                let loss = values.get("loss").copied().unwrap_or(f64::NAN);
                self.engine.schedule.step_with_metric(loss);
            }
        }
        self.hook(end)?;
        Ok(values)
    }

    /// Tracks the best validation loss and the config's early-stopping patience.
    fn track_best(&mut self, values: &MetricValues) {
        let Some(&loss) = values.get("loss") else {
            return;
        };
        let improved = self
            .engine
            .state
            .best
            .as_ref()
            .is_none_or(|best| loss < best.value);
        if improved {
            self.engine.state.best = Some(BestMetric {
                name: "valid/loss".into(),
                value: loss,
                step: self.engine.state.global_step,
                epoch: self.engine.state.epoch + 1,
            });
            self.engine.state.stale_validations = 0;
        } else {
            self.engine.state.stale_validations += 1;
        }
        if let Some(patience) = self.engine.config.early_stopping_patience {
            if self.engine.state.stale_validations >= patience {
                self.engine.control.stop(format!(
                    "early stopping: valid/loss did not improve for {} validations (patience {patience})",
                    self.engine.state.stale_validations
                ));
            }
        }
    }

    fn optimizer_step(&mut self, grads: GradientsParams) {
        let model = self.model.take().expect("model present between steps");
        let mut grads = grads;
        if let Some(clipping) = self.engine.config.gradient_clipping {
            clip_gradients(&model, &mut grads, clipping);
        }
        let model = self.optimizer.step(self.engine.schedule.lr(), model, grads);
        self.model = Some(model);
        self.engine.state.global_step += 1;
        if self.engine.config.schedule_interval == ScheduleInterval::Step {
            self.advance_schedule();
        }
    }

    /// Steps the schedule on its interval; schedules that need a metric step after each
    /// validation instead (see `run_eval`).
    fn advance_schedule(&mut self) {
        if !self.engine.schedule.needs_metric() {
            self.engine.schedule.step();
        }
    }

    /// Throughput over the logging window that ends now (this session's steps only), time in
    /// `fit` so far, and the time left at that pace when the run's length is known.
    fn add_pace(&mut self, values: &mut MetricValues) {
        let seconds = self.progress.window_started.elapsed().as_secs_f64();
        let steps = std::mem::take(&mut self.progress.window_steps);
        let samples = std::mem::take(&mut self.progress.window_samples);
        self.progress.window_started = Instant::now();
        values.insert("elapsed_seconds".into(), self.engine.elapsed_seconds());
        if seconds <= 0.0 || steps == 0 {
            return;
        }
        let steps_per_second = steps as f64 / seconds;
        values.insert("steps_per_second".into(), steps_per_second);
        values.insert("samples_per_second".into(), samples as f64 / seconds);
        let config = &self.engine.config;
        let per_epoch = self.num_batches().div_ceil(config.gradient_accumulation);
        let total = match (config.epochs.map(|e| e * per_epoch), config.max_steps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(total) = total {
            values.insert(
                "eta_seconds".into(),
                total.saturating_sub(self.engine.state.global_step) as f64 / steps_per_second,
            );
        }
    }

    /// Batches in one epoch of the training data.
    fn num_batches(&self) -> usize {
        self.engine.batches_per_epoch.unwrap_or(0)
    }

    /// The metric state of a new epoch.
    fn fresh_progress(&self) -> Progress<B::InnerBackend> {
        Progress {
            window: MetricAccumulator::new()
                .with_top_k(self.top_k)
                .with_metrics(self.train_metrics.clone()),
            ..Progress::default()
        }
    }
}

/// The supervised trainer's batches, optimizer steps, epochs and validation, as the engine
/// loop drives them (`fit` runs [`run_loop`] over it). Call `fit`, not these.
impl<B, M, O, TB, VB> StepProgram for SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
    O: Optimizer<M, B>,
    O::Record: HostRecord<B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        SupervisedTrainer::snapshot(self)
    }

    fn can_snapshot(&self) -> bool {
        // The model is out of its slot only inside an optimizer step (a panic there leaves it
        // out: no snapshot of a half-stepped run).
        self.progress.pending == 0 && self.model.is_some()
    }

    fn begin(&mut self) -> Result<()> {
        if self.train.is_none() {
            return Err(TrainerError::MissingData {
                split: "train",
                builder_method: "train_data",
            });
        }
        // The batches of an earlier `fit` that ended early are not this cursor's.
        self.epoch_batches = None;
        if self.engine.state.batch_in_epoch > 0 {
            // Resumed mid-epoch: the epoch's clock goes on from the checkpoint's.
            self.progress.epoch_started = Instant::now();
        }
        Ok(())
    }

    fn after_callbacks(&mut self) {
        if self.engine.control.take_keep_weights() {
            self.kept = Some(self.model().clone());
        }
        if self.engine.control.take_restore_kept_weights() {
            if let Some(kept) = self.kept.clone() {
                self.model = Some(kept);
            }
        }
    }

    fn at_epoch_start(&self) -> bool {
        self.engine.state.batch_in_epoch == 0
    }

    fn epoch_done(&self) -> bool {
        // No batches at all is the data's error, which making the batches reports.
        let num_batches = self.num_batches();
        num_batches > 0 && self.engine.state.batch_in_epoch >= num_batches
    }

    fn begin_epoch(&mut self) -> Result<()> {
        self.progress = self.fresh_progress();
        self.accumulator = GradientsAccumulator::new();
        Ok(())
    }

    fn step(&mut self) -> Result<StepDone> {
        let epoch = self.engine.state.epoch;
        if self.epoch_batches.is_none() {
            let cursor = DataCursor {
                epoch,
                batch: self.engine.state.batch_in_epoch,
            };
            let loader = self.train.as_ref().ok_or(TrainerError::MissingData {
                split: "train",
                builder_method: "train_data",
            })?;
            self.epoch_batches = Some(loader.iter(cursor)?);
        }
        let batch = self
            .epoch_batches
            .as_mut()
            .and_then(Iterator::next)
            .unwrap_or_else(|| {
                Err(TrainerError::Data {
                    split: "train",
                    message: "the batches of the epoch ended early".into(),
                })
            })?;
        let num_batches = self.num_batches();
        let accumulation = self.engine.config.gradient_accumulation;
        let loss_scale = 1.0 / accumulation as f64;
        let model = self.model();
        let output = {
            // Random ops (dropout) draw from a stream fixed by (seed, epoch, batch), so a
            // resumed run repeats them. burn's backend RNG is global to the process: the lock
            // keeps trainers on other threads from drawing from this step's stream.
            let _rng = BACKEND_RNG.lock().unwrap_or_else(PoisonError::into_inner);
            B::seed(
                &self.device,
                mix_seed(
                    mix_seed(self.engine.config.seed, epoch as u64),
                    self.engine.state.batch_in_epoch as u64,
                ),
            );
            TrainStep::step(model, batch)
        };
        let batch_size = output.batch_size;
        let loss = if accumulation > 1 {
            output.loss.clone().mul_scalar(loss_scale)
        } else {
            output.loss.clone()
        };
        let grads = GradientsParams::from_grads(loss.backward(), model);
        self.progress.window.update(&output.detach_inner());
        drop(output);
        self.engine.state.batch_in_epoch += 1;
        self.engine.state.samples_seen += batch_size as u64;
        self.progress.window_samples += batch_size as u64;
        self.progress.pending += 1;
        let last_batch = self.engine.state.batch_in_epoch == num_batches;
        // The lr this batch's optimizer step uses, before the schedule advances.
        let step_lr = self.engine.schedule.lr();
        let stepped = if accumulation > 1 {
            let model = self.model.as_ref().expect("model present between steps");
            self.accumulator.accumulate(model, grads);
            if self.progress.pending == accumulation || last_batch {
                let grads = self.accumulator.grads();
                self.optimizer_step(grads);
                true
            } else {
                false
            }
        } else {
            self.optimizer_step(grads);
            true
        };
        if stepped {
            self.progress.pending = 0;
            self.progress.window_steps += 1;
            if self
                .engine
                .state
                .global_step
                .is_multiple_of(self.engine.config.log_every)
            {
                let totals = self.progress.window.read_totals();
                self.progress.epoch_totals.add(&totals);
                self.progress.window.reset();
                let mut values = self.progress.window.values(&totals);
                values.insert("lr".into(), step_lr);
                self.add_pace(&mut values);
                self.engine
                    .latest
                    .set(Split::Train, self.engine.state.global_step, values);
            }
        }
        Ok(StepDone {
            optimizer_step: stepped,
            ..StepDone::default()
        })
    }

    fn after_step(&mut self) -> Result<()> {
        let step = self.engine.state.global_step;
        if self
            .engine
            .config
            .validation
            .is_some_and(|f| f.fires_at_step(step))
            && self.valid.is_some()
        {
            self.run_eval(Split::Valid)?;
        }
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<()> {
        self.epoch_batches = None;
        if !self.progress.window.is_empty() {
            let totals = self.progress.window.read_totals();
            self.progress.epoch_totals.add(&totals);
            self.progress.window.reset();
            let values = self.progress.window.values(&totals);
            self.engine
                .latest
                .set(Split::Train, self.engine.state.global_step, values);
        }
        self.engine.state.epoch += 1;
        self.engine.state.batch_in_epoch = 0;
        if self.engine.config.schedule_interval == ScheduleInterval::Epoch {
            self.advance_schedule();
        }
        let valid = if self
            .engine
            .config
            .validation
            .is_some_and(|f| f.fires_at_epoch_end(self.engine.state.epoch))
            && self.valid.is_some()
        {
            Some(self.run_eval(Split::Valid)?)
        } else {
            None
        };
        self.engine.state.schedule = Some(self.engine.schedule.state());
        self.engine.state.history.push(EpochSummary {
            epoch: self.engine.state.epoch,
            global_step: self.engine.state.global_step,
            learning_rate: self.engine.schedule.lr(),
            train: self.progress.window.values(&self.progress.epoch_totals),
            valid,
            seconds: self.progress.epoch_seconds(),
        });
        self.progress = self.fresh_progress();
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // Ends the loader thread of an epoch the run stopped in.
        self.epoch_batches = None;
        Ok(())
    }
}

impl<B, M, O, TB, VB> Trainer for SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
    O: Optimizer<M, B>,
    O::Record: HostRecord<B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    fn fit(&mut self) -> Result<FitReport> {
        self.engine.start_clock();
        let result = contain("training", || run_loop(self));
        let result = match result {
            Ok(()) => Ok(FitReport::from_state(
                &self.engine.state,
                self.engine.latest.valid().cloned(),
            )),
            Err(error) => Err(self.fail(error)),
        };
        self.engine.stop_clock();
        result
    }

    fn validate(&mut self) -> Result<MetricValues> {
        contain("validation", || self.run_eval(Split::Valid)).map_err(|e| self.fail(e))
    }

    fn test(&mut self) -> Result<MetricValues> {
        contain("testing", || self.run_eval(Split::Test)).map_err(|e| self.fail(e))
    }

    fn state(&self) -> &TrainingState {
        &self.engine.state
    }

    fn config(&self) -> &TrainerConfig {
        &self.engine.config
    }
}
