use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::{clip_gradients, FitReport, Trainer};
use crate::callback::{AvailableMetrics, CallbackList, Context, Control, Hook, LatestMetrics};
use crate::checkpoint::{
    latest_in, load_module_host, verify, write_atomic, CheckpointPayload,
    EpochProgress, HostRecord, RngState, Snapshot, BURN_VERSION, FORMAT_MAJOR, FORMAT_MINOR,
    HEADER_LEN, TRAINER_VERSION,
};
use crate::config::{ScheduleInterval, TrainerConfig};
use crate::data::{mix_seed, DataCursor, DataLoader};
use crate::error::{Result, TrainerError};
use crate::metric::{MetricAccumulator, Metrics, Split, Totals};
use crate::schedule::LrSchedule;
use crate::state::{BestMetric, EpochSummary, MetricValues, StopReason, TrainingState};
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
    pub(super) config: TrainerConfig,
    pub(super) schedule: Box<dyn LrSchedule>,
    pub(super) train: Option<DataLoader<B, TB>>,
    pub(super) valid: Option<DataLoader<B::InnerBackend, VB>>,
    pub(super) test: Option<DataLoader<B::InnerBackend, VB>>,
    pub(super) callbacks: CallbackList,
    pub(super) device: B::Device,
    pub(super) state: TrainingState,
    pub(super) latest: LatestMetrics,
    pub(super) control: Control,
    pub(super) progress: Progress<B::InnerBackend>,
    /// When the current `fit` started and the seconds spent in earlier ones.
    pub(super) clock: Option<(Instant, f64)>,
    /// The metrics each split can produce.
    pub(super) available: AvailableMetrics,
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

/// Where one hook round left the run.
enum Flow {
    Continue,
    Stop,
}

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
        self.model.as_ref().expect("the model is only taken during an optimizer step")
    }

    /// Ends the trainer and hands back the trained model.
    pub fn into_model(self) -> M {
        self.model.expect("the model is only taken during an optimizer step")
    }

    /// The learning rate the next optimizer step uses.
    pub fn learning_rate(&self) -> f64 {
        self.schedule.lr()
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
        &self.latest
    }

    /// The device the model trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Runs `f` on the callbacks with a context over the trainer's state.
    fn with_callbacks<R>(&mut self, f: impl FnOnce(&mut CallbackList, &mut Context<'_>) -> R) -> R {
        let mut ctx = Context {
            state: &self.state,
            metrics: &self.latest,
            learning_rate: self.schedule.lr(),
            control: &mut self.control,
            available: &self.available,
            config: &self.config,
            batches_per_epoch: self.train.as_ref().map(DataLoader::num_batches),
        };
        f(&mut self.callbacks, &mut ctx)
    }

    fn hook(&mut self, hook: Hook) -> Result<Flow> {
        self.with_callbacks(|callbacks, ctx| callbacks.run(hook, ctx))?;
        if self.control.take_keep_weights() {
            self.kept = Some(self.model().clone());
        }
        if self.control.take_restore_kept_weights() {
            if let Some(kept) = self.kept.clone() {
                self.model = Some(kept);
            }
        }
        if let Some(reason) = self.control.stop_requested() {
            if self.state.stop_reason.is_none() {
                self.state.stop_reason = Some(StopReason::Requested(reason.to_string()));
            }
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
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
        let mut state = self.state.clone();
        if let Some((started, before)) = self.clock {
            state.elapsed_seconds = before + started.elapsed().as_secs_f64();
        }
        state.schedule = Some(self.schedule.state());
        let meta = CheckpointPayload {
            format_version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            trainer_version: TRAINER_VERSION.into(),
            burn_version: BURN_VERSION.into(),
            config: self.config.clone(),
            cursor: DataCursor { epoch: state.epoch, batch: state.batch_in_epoch },
            rng: RngState::new(self.config.seed),
            schedule: self.schedule.state(),
            callbacks: self.callbacks.states(),
            metrics: self.latest.clone(),
            progress: EpochProgress {
                window: self.progress.window.read_totals(),
                epoch: self.progress.epoch_totals.clone(),
                seconds: if state.batch_in_epoch > 0 { self.progress.epoch_seconds() } else { 0.0 },
            },
            module: (),
            optimizer: (),
            kept_module: None,
            state,
        };
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
            latest_in(from)?.ok_or_else(|| TrainerError::NoCheckpoint { dir: from.to_path_buf() })?
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
        let bytes = std::fs::read(path).map_err(|source| TrainerError::Io {
            action: "reading checkpoint",
            path: path.to_path_buf(),
            source,
        })?;
        verify(&bytes, &origin)?;
        let mismatch = |detail: String| TrainerError::CheckpointMismatch { path: origin.clone(), detail };
        let payload: CheckpointPayload<ModuleHost<B, M>, OptimizerHost<B, M, O>> =
            rmp_serde::from_slice(&bytes[HEADER_LEN..]).map_err(|e| {
                mismatch(format!("its payload does not decode as this model's and optimizer's records: {e}"))
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
        let current = self.optimizer.clone();
        let record = payload.optimizer;
        let optimizer = catch_unwind(AssertUnwindSafe(|| {
            current.load_record(<O::Record as HostRecord<B>>::from_host(record, &device))
        }))
        .map_err(|_| mismatch("its optimizer record holds tensor data burn cannot load".into()))?;
        self.schedule.load_state(payload.schedule)?;
        self.callbacks.load_states(payload.callbacks)?;
        self.model = Some(model);
        self.kept = kept;
        self.optimizer = optimizer;
        let mut state = payload.state;
        state.stop_reason = None;
        self.state = state;
        self.latest = payload.metrics;
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
        let ours = &self.config;
        let differs = |field: &str, theirs: String, mine: String| {
            Err(format!(
                "`{field}` is {theirs} in the checkpoint and {mine} in this trainer; it fixes the data order, so the run would not continue where it stopped"
            ))
        };
        if saved.seed != ours.seed {
            return differs("seed", saved.seed.to_string(), ours.seed.to_string());
        }
        if saved.batch_size != ours.batch_size {
            return differs("batch_size", saved.batch_size.to_string(), ours.batch_size.to_string());
        }
        if saved.drop_last != ours.drop_last {
            return differs("drop_last", saved.drop_last.to_string(), ours.drop_last.to_string());
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

    /// Takes a snapshot for the callbacks if one asked, at a point where the run can resume
    /// from: between optimizer steps. A request made in the middle of an accumulated step waits
    /// for the step; one made in `on_checkpoint` itself is dropped (it would save forever).
    fn serve_checkpoint_request(&mut self) -> Result<()> {
        if !self.control.checkpoint_requested() || self.progress.pending > 0 {
            return Ok(());
        }
        self.control.take_checkpoint_request();
        let snapshot = Arc::new(self.snapshot()?);
        self.with_callbacks(|callbacks, ctx| callbacks.run_snapshot(ctx, &snapshot))?;
        self.hook(Hook::Checkpoint)?;
        self.control.take_checkpoint_request();
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
        self.latest.set(split, self.state.global_step, values.clone());
        if split == Split::Valid {
            self.track_best(&values);
            if self.schedule.needs_metric() {
                // A missing loss counts as no improvement.
                let loss = values.get("loss").copied().unwrap_or(f64::NAN);
                self.schedule.step_with_metric(loss);
            }
        }
        self.hook(end)?;
        Ok(values)
    }

    /// Tracks the best validation loss and the config's early-stopping patience.
    fn track_best(&mut self, values: &MetricValues) {
        let Some(&loss) = values.get("loss") else { return };
        let improved = self
            .state
            .best
            .as_ref()
            .is_none_or(|best| loss < best.value);
        if improved {
            self.state.best = Some(BestMetric {
                name: "valid/loss".into(),
                value: loss,
                step: self.state.global_step,
                epoch: self.state.epoch + 1,
            });
            self.state.stale_validations = 0;
        } else {
            self.state.stale_validations += 1;
        }
        if let Some(patience) = self.config.early_stopping_patience {
            if self.state.stale_validations >= patience {
                self.control.stop(format!(
                    "early stopping: valid/loss did not improve for {} validations (patience {patience})",
                    self.state.stale_validations
                ));
            }
        }
    }

    fn optimizer_step(&mut self, grads: GradientsParams) {
        let model = self.model.take().expect("model present between steps");
        let mut grads = grads;
        if let Some(clipping) = self.config.gradient_clipping {
            clip_gradients(&model, &mut grads, clipping);
        }
        let model = self.optimizer.step(self.schedule.lr(), model, grads);
        self.model = Some(model);
        self.state.global_step += 1;
        if self.config.schedule_interval == ScheduleInterval::Step {
            self.advance_schedule();
        }
    }

    /// Steps the schedule on its interval; schedules that need a metric step after each
    /// validation instead (see `run_eval`).
    fn advance_schedule(&mut self) {
        if !self.schedule.needs_metric() {
            self.schedule.step();
        }
    }

    /// Throughput over the logging window that ends now (this session's steps only), time in
    /// `fit` so far, and the time left at that pace when the run's length is known.
    fn add_pace(&mut self, values: &mut MetricValues, loader: &DataLoader<B, TB>) {
        let seconds = self.progress.window_started.elapsed().as_secs_f64();
        let steps = std::mem::take(&mut self.progress.window_steps);
        let samples = std::mem::take(&mut self.progress.window_samples);
        self.progress.window_started = Instant::now();
        if let Some((started, before)) = self.clock {
            values.insert("elapsed_seconds".into(), before + started.elapsed().as_secs_f64());
        }
        if seconds <= 0.0 || steps == 0 {
            return;
        }
        let steps_per_second = steps as f64 / seconds;
        values.insert("steps_per_second".into(), steps_per_second);
        values.insert("samples_per_second".into(), samples as f64 / seconds);
        let per_epoch = loader.num_batches().div_ceil(self.config.gradient_accumulation);
        let total = match (self.config.epochs.map(|e| e * per_epoch), self.config.max_steps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(total) = total {
            values.insert("eta_seconds".into(), total.saturating_sub(self.state.global_step) as f64 / steps_per_second);
        }
    }

    /// The metric state of a new epoch.
    fn fresh_progress(&self) -> Progress<B::InnerBackend> {
        Progress {
            window: MetricAccumulator::new().with_top_k(self.top_k).with_metrics(self.train_metrics.clone()),
            ..Progress::default()
        }
    }

    fn max_steps_reached(&self) -> bool {
        self.config
            .max_steps
            .is_some_and(|max| self.state.global_step >= max)
    }

    /// Runs one epoch from the cursor; returns whether the run must stop.
    fn run_epoch(&mut self, loader: &DataLoader<B, TB>) -> Result<Flow> {
        let epoch = self.state.epoch;
        if self.state.batch_in_epoch == 0 {
            self.progress = self.fresh_progress();
            if let Flow::Stop = self.hook(Hook::EpochBegin)? {
                return Ok(Flow::Stop);
            }
        }
        let num_batches = loader.num_batches();
        let accumulation = self.config.gradient_accumulation;
        let loss_scale = 1.0 / accumulation as f64;
        let mut accumulator = GradientsAccumulator::<M>::new();
        let batches = loader.iter(DataCursor {
            epoch,
            batch: self.state.batch_in_epoch,
        })?;
        for batch in batches {
            let batch = batch?;
            if let Flow::Stop = self.hook(Hook::BatchBegin)? {
                return Ok(Flow::Stop);
            }
            let model = self.model();
            let output = {
                // Random ops (dropout) draw from a stream fixed by (seed, epoch, batch), so a
                // resumed run repeats them. burn's backend RNG is global to the process: the lock
                // keeps trainers on other threads from drawing from this step's stream.
                let _rng = BACKEND_RNG.lock().unwrap_or_else(PoisonError::into_inner);
                B::seed(
                    &self.device,
                    mix_seed(mix_seed(self.config.seed, epoch as u64), self.state.batch_in_epoch as u64),
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
            self.state.batch_in_epoch += 1;
            self.state.samples_seen += batch_size as u64;
            self.progress.window_samples += batch_size as u64;
            self.progress.pending += 1;
            let last_batch = self.state.batch_in_epoch == num_batches;
            // The lr this batch's optimizer step uses, before the schedule advances.
            let step_lr = self.schedule.lr();
            let stepped = if accumulation > 1 {
                accumulator.accumulate(self.model(), grads);
                if self.progress.pending == accumulation || last_batch {
                    let grads = accumulator.grads();
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
                if self.state.global_step.is_multiple_of(self.config.log_every) {
                    let totals = self.progress.window.read_totals();
                    self.progress.epoch_totals.add(&totals);
                    self.progress.window.reset();
                    let mut values = self.progress.window.values(&totals);
                    values.insert("lr".into(), step_lr);
                    self.add_pace(&mut values, loader);
                    self.latest.set(Split::Train, self.state.global_step, values);
                }
            }
            let mut flow = self.hook(Hook::BatchEnd)?;
            if stepped && matches!(flow, Flow::Continue) {
                if self
                    .config
                    .validation
                    .is_some_and(|f| f.fires_at_step(self.state.global_step))
                    && self.valid.is_some()
                {
                    self.run_eval(Split::Valid)?;
                    if self.control.stop_requested().is_some() {
                        flow = Flow::Stop;
                    }
                }
                if self.max_steps_reached() {
                    self.state.stop_reason = Some(StopReason::MaxStepsReached);
                    flow = Flow::Stop;
                }
            }
            self.serve_checkpoint_request()?;
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
        }
        if !self.progress.window.is_empty() {
            let totals = self.progress.window.read_totals();
            self.progress.epoch_totals.add(&totals);
            self.progress.window.reset();
            let values = self.progress.window.values(&totals);
            self.latest.set(Split::Train, self.state.global_step, values);
        }
        // The epoch is complete.
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        if self.config.schedule_interval == ScheduleInterval::Epoch {
            self.advance_schedule();
        }
        let valid = if self
            .config
            .validation
            .is_some_and(|f| f.fires_at_epoch_end(self.state.epoch))
            && self.valid.is_some()
        {
            Some(self.run_eval(Split::Valid)?)
        } else {
            None
        };
        self.state.schedule = Some(self.schedule.state());
        self.state.history.push(EpochSummary {
            epoch: self.state.epoch,
            global_step: self.state.global_step,
            learning_rate: self.schedule.lr(),
            train: self.progress.window.values(&self.progress.epoch_totals),
            valid,
            seconds: self.progress.epoch_seconds(),
        });
        self.progress = self.fresh_progress();
        // Early stopping during validation still closes the epoch for the callbacks.
        let flow = self.hook(Hook::EpochEnd)?;
        self.serve_checkpoint_request()?;
        Ok(flow)
    }

    fn fit_loop(&mut self) -> Result<()> {
        let loader = self.train.clone().ok_or(TrainerError::MissingData {
            split: "train",
            builder_method: "train_data",
        })?;
        self.state.stop_reason = None;
        self.control = Control::default();
        if self.state.batch_in_epoch > 0 {
            // Resumed mid-epoch: the epoch's clock goes on from the checkpoint's.
            self.progress.epoch_started = Instant::now();
        }
        if let Flow::Stop = self.hook(Hook::TrainBegin)? {
            return self.end_train();
        }
        loop {
            if self.max_steps_reached() {
                self.state.stop_reason = Some(StopReason::MaxStepsReached);
                break;
            }
            if self.config.epochs.is_some_and(|e| self.state.epoch >= e) {
                self.state.stop_reason = Some(StopReason::EpochsCompleted);
                break;
            }
            let flow = self.run_epoch(&loader)?;
            self.update_elapsed();
            if let Flow::Stop = flow {
                break;
            }
        }
        self.end_train()
    }

    fn update_elapsed(&mut self) {
        if let Some((started, before)) = self.clock {
            self.state.elapsed_seconds = before + started.elapsed().as_secs_f64();
        }
    }

    fn end_train(&mut self) -> Result<()> {
        self.update_elapsed();
        self.state.schedule = Some(self.schedule.state());
        self.hook(Hook::TrainEnd)?;
        self.serve_checkpoint_request()?;
        Ok(())
    }

    /// Ends a failed run: callbacks hear of the error, an emergency checkpoint is taken if one
    /// asks for it (between optimizer steps only), then the error is returned.
    fn fail(&mut self, error: TrainerError) -> TrainerError {
        self.state.stop_reason = Some(StopReason::Failed(error.to_string()));
        self.control.take_checkpoint_request();
        self.with_callbacks(|callbacks, ctx| callbacks.run_exception(ctx, &error));
        if self.control.checkpoint_requested() && self.progress.pending > 0 {
            log::warn!(
                "no emergency checkpoint: the error came between micro-batches of an accumulated step; the last checkpoint stands"
            );
        }
        if let Err(save_error) = self.serve_checkpoint_request() {
            log::error!("the emergency checkpoint failed: {save_error}");
        }
        error
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
        self.clock = Some((Instant::now(), self.state.elapsed_seconds));
        let result = self.fit_loop();
        let result = match result {
            Ok(()) => Ok(FitReport::from_state(
                &self.state,
                self.latest.valid().cloned(),
            )),
            Err(error) => Err(self.fail(error)),
        };
        self.clock = None;
        result
    }

    fn validate(&mut self) -> Result<MetricValues> {
        self.run_eval(Split::Valid).map_err(|e| self.fail(e))
    }

    fn test(&mut self) -> Result<MetricValues> {
        self.run_eval(Split::Test).map_err(|e| self.fail(e))
    }

    fn state(&self) -> &TrainingState {
        &self.state
    }

    fn config(&self) -> &TrainerConfig {
        &self.config
    }
}
