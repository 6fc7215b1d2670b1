use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;

use super::{clip_gradients, FitReport, Trainer};
use crate::callback::{CallbackList, Context, Control, Hook, LatestMetrics};
use crate::config::{ScheduleInterval, TrainerConfig};
use crate::data::{mix_seed, DataCursor, DataLoader};
use crate::error::{Result, TrainerError};
use crate::metric::{MetricAccumulator, Split, Totals};
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
    pub(super) checkpoint_dir: Option<PathBuf>,
    pub(super) device: B::Device,
    pub(super) state: TrainingState,
    pub(super) latest: LatestMetrics,
    pub(super) control: Control,
}

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
    O: Optimizer<M, B>,
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

    /// The latest metrics read back, per split.
    pub fn latest_metrics(&self) -> &LatestMetrics {
        &self.latest
    }

    /// The device the model trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    fn hook(&mut self, hook: Hook) -> Result<Flow> {
        let mut ctx = Context {
            state: &self.state,
            metrics: &self.latest,
            learning_rate: self.schedule.lr(),
            control: &mut self.control,
        };
        self.callbacks.run(hook, &mut ctx)?;
        // A request made in `on_checkpoint` itself would save forever: it is dropped.
        if self.control.take_checkpoint_request() && hook != Hook::Checkpoint {
            self.save_checkpoint()?;
        }
        if let Some(reason) = self.control.stop_requested() {
            if self.state.stop_reason.is_none() {
                self.state.stop_reason = Some(StopReason::Requested(reason.to_string()));
            }
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// Writes the model, the optimizer state and the training state into
    /// `<checkpoint_dir>/epoch-EEEE-step-SSSSSS/` and returns that folder; `None` without a
    /// checkpoint folder.
    pub fn save_checkpoint(&mut self) -> Result<Option<PathBuf>> {
        let Some(root) = self.checkpoint_dir.clone() else {
            return Ok(None);
        };
        let dir = root.join(format!(
            "epoch-{:04}-step-{:06}",
            self.state.epoch, self.state.global_step
        ));
        std::fs::create_dir_all(&dir).map_err(|source| TrainerError::Io {
            action: "creating checkpoint folder",
            path: dir.clone(),
            source,
        })?;
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let record_error = |path: PathBuf, e: burn::record::RecorderError| TrainerError::Record {
            path,
            message: e.to_string(),
        };
        let model_path = dir.join("model");
        self.model()
            .clone()
            .save_file(model_path.clone(), &recorder)
            .map_err(|e| record_error(model_path, e))?;
        let optim_path = dir.join("optimizer");
        recorder
            .record(self.optimizer.to_record(), optim_path.clone())
            .map_err(|e| record_error(optim_path, e))?;
        let state_path = dir.join("state.json");
        let state = serde_json::json!({
            "state": self.state,
            "schedule": self.schedule.state(),
            "callbacks": self.callbacks.states(),
        });
        std::fs::write(&state_path, state.to_string()).map_err(|source| TrainerError::Io {
            action: "writing",
            path: state_path,
            source,
        })?;
        self.hook(Hook::Checkpoint)?;
        Ok(Some(dir))
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
        let mut metrics = MetricAccumulator::<B::InnerBackend>::new();
        for batch in loader.iter(DataCursor::epoch_start(0))? {
            let output = ValidStep::step(&model, batch?);
            metrics.update(&output);
        }
        let values = metrics.read();
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

    fn max_steps_reached(&self) -> bool {
        self.config
            .max_steps
            .is_some_and(|max| self.state.global_step >= max)
    }

    /// Runs one epoch from the cursor; returns whether the run must stop.
    fn run_epoch(&mut self, loader: &DataLoader<B, TB>) -> Result<Flow> {
        let epoch_start = Instant::now();
        let epoch = self.state.epoch;
        if self.state.batch_in_epoch == 0 {
            if let Flow::Stop = self.hook(Hook::EpochBegin)? {
                return Ok(Flow::Stop);
            }
        }
        let num_batches = loader.num_batches();
        let accumulation = self.config.gradient_accumulation;
        let loss_scale = 1.0 / accumulation as f64;
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut pending = 0usize;
        let mut window = MetricAccumulator::<B::InnerBackend>::new();
        let mut epoch_totals = Totals::default();
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
            window.update(&output.detach_inner());
            drop(output);
            self.state.batch_in_epoch += 1;
            self.state.samples_seen += batch_size as u64;
            pending += 1;
            let last_batch = self.state.batch_in_epoch == num_batches;
            // The lr this batch's optimizer step uses, before the schedule advances.
            let step_lr = self.schedule.lr();
            let stepped = if accumulation > 1 {
                accumulator.accumulate(self.model(), grads);
                if pending == accumulation || last_batch {
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
                pending = 0;
                if self.state.global_step.is_multiple_of(self.config.log_every) {
                    let totals = window.read_totals();
                    epoch_totals.add(totals);
                    window.reset();
                    let mut values = totals.means();
                    values.insert("lr".into(), step_lr);
                    self.latest.set(Split::Train, self.state.global_step, values);
                }
            }
            if let Flow::Stop = self.hook(Hook::BatchEnd)? {
                return Ok(Flow::Stop);
            }
            if stepped {
                if self
                    .config
                    .validation
                    .is_some_and(|f| f.fires_at_step(self.state.global_step))
                    && self.valid.is_some()
                {
                    self.run_eval(Split::Valid)?;
                    if self.control.stop_requested().is_some() {
                        return Ok(Flow::Stop);
                    }
                }
                if self
                    .config
                    .checkpoint
                    .is_some_and(|f| f.fires_at_step(self.state.global_step))
                {
                    self.save_checkpoint()?;
                }
                if self.max_steps_reached() {
                    self.state.stop_reason = Some(StopReason::MaxStepsReached);
                    return Ok(Flow::Stop);
                }
            }
        }
        if !window.is_empty() {
            let totals = window.read_totals();
            epoch_totals.add(totals);
            self.latest
                .set(Split::Train, self.state.global_step, totals.means());
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
            train: epoch_totals.means(),
            valid,
            seconds: epoch_start.elapsed().as_secs_f64(),
        });
        if self.control.stop_requested().is_some() {
            // Stopped by validation (early stopping): still close the epoch for the callbacks.
            self.hook(Hook::EpochEnd)?;
            return Ok(Flow::Stop);
        }
        if self
            .config
            .checkpoint
            .is_some_and(|f| f.fires_at_epoch_end(self.state.epoch))
        {
            self.save_checkpoint()?;
        }
        self.hook(Hook::EpochEnd)
    }

    fn fit_loop(&mut self, started: Instant, elapsed_before: f64) -> Result<()> {
        let loader = self.train.clone().ok_or(TrainerError::MissingData {
            split: "train",
            builder_method: "train_data",
        })?;
        self.state.stop_reason = None;
        self.control = Control::default();
        if let Flow::Stop = self.hook(Hook::TrainBegin)? {
            return self.end_train(started, elapsed_before);
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
            self.state.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
            if let Flow::Stop = flow {
                break;
            }
        }
        self.end_train(started, elapsed_before)
    }

    fn end_train(&mut self, started: Instant, elapsed_before: f64) -> Result<()> {
        self.state.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
        self.state.schedule = Some(self.schedule.state());
        self.hook(Hook::TrainEnd)?;
        Ok(())
    }

    fn fail(&mut self, error: TrainerError) -> TrainerError {
        self.state.stop_reason = Some(StopReason::Failed(error.to_string()));
        let mut ctx = Context {
            state: &self.state,
            metrics: &self.latest,
            learning_rate: self.schedule.lr(),
            control: &mut self.control,
        };
        self.callbacks.run_exception(&mut ctx, &error);
        error
    }
}

impl<B, M, O, TB, VB> Trainer for SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    O: Optimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    fn fit(&mut self) -> Result<FitReport> {
        let started = Instant::now();
        let elapsed_before = self.state.elapsed_seconds;
        match self.fit_loop(started, elapsed_before) {
            Ok(()) => Ok(FitReport::from_state(
                &self.state,
                self.latest.valid().cloned(),
            )),
            Err(error) => Err(self.fail(error)),
        }
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
