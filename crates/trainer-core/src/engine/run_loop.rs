//! The one training loop ([`run_loop`]), the contract of the programs it drives
//! ([`StepProgram`]: the supervised trainer, a job) and what every run has ([`Engine`]).
//!
//! One file past 400 lines: the loop, its contract and its engine are read together; each
//! default method of the contract is a step of the loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::contain;
use crate::callback::{AvailableMetrics, CallbackList, Context, Control, Hook, LatestMetrics};
use crate::checkpoint::{
    CheckpointPayload, EpochProgress, RngState, Snapshot, BURN_VERSION, FORMAT_MAJOR, FORMAT_MINOR,
    TRAINER_VERSION,
};
use crate::config::TrainerConfig;
use crate::data::DataCursor;
use crate::error::{Result, TrainerError};
use crate::schedule::LrSchedule;
use crate::state::{StopReason, TrainingState};

/// What every run has, whatever its steps do: the training state and config, the learning-rate
/// schedule, the callbacks and what they asked for, the latest metrics. [`run_loop`] drives a
/// [`StepProgram`] through it.
pub struct Engine {
    /// Where the run stands.
    pub state: TrainingState,
    /// The run's configuration.
    pub config: TrainerConfig,
    /// The learning rate, advanced by the program's steps.
    pub schedule: Box<dyn LrSchedule>,
    /// The callbacks, in call order.
    pub callbacks: CallbackList,
    /// What the callbacks asked for in their last rounds.
    pub control: Control,
    /// The latest metrics read back, per split.
    pub latest: LatestMetrics,
    /// The metrics each split can produce (callbacks check their monitors against it).
    pub available: AvailableMetrics,
    /// Batches in one epoch of the training data, when the program knows.
    pub batches_per_epoch: Option<usize>,
    /// When the current run started and the seconds spent in earlier ones.
    clock: Option<(Instant, f64)>,
}

impl Engine {
    /// An engine at the start of a run.
    pub fn new(
        config: TrainerConfig,
        schedule: Box<dyn LrSchedule>,
        callbacks: CallbackList,
        available: AvailableMetrics,
        batches_per_epoch: Option<usize>,
    ) -> Self {
        Self {
            state: TrainingState::default(),
            config,
            schedule,
            callbacks,
            control: Control::default(),
            latest: LatestMetrics::default(),
            available,
            batches_per_epoch,
            clock: None,
        }
    }

    /// Runs `f` on the callbacks with a context over the run.
    pub fn with_callbacks<R>(
        &mut self,
        f: impl FnOnce(&mut CallbackList, &mut Context<'_>) -> R,
    ) -> R {
        let mut ctx = Context {
            state: &self.state,
            metrics: &self.latest,
            learning_rate: self.schedule.lr(),
            control: &mut self.control,
            available: &self.available,
            config: &self.config,
            batches_per_epoch: self.batches_per_epoch,
        };
        let result = f(&mut self.callbacks, &mut ctx);
        self.state.checkpoint_failures += self.control.take_checkpoint_failures();
        result
    }

    /// Starts the clock of a run (training time goes on from the state's `elapsed_seconds`).
    pub fn start_clock(&mut self) {
        self.clock = Some((Instant::now(), self.state.elapsed_seconds));
    }

    /// Stops the clock at the end of a run.
    pub fn stop_clock(&mut self) {
        self.clock = None;
    }

    /// Seconds of training so far, this run's included.
    pub fn elapsed_seconds(&self) -> f64 {
        match self.clock {
            Some((started, before)) => before + started.elapsed().as_secs_f64(),
            None => self.state.elapsed_seconds,
        }
    }

    /// Writes the elapsed time into the state.
    pub fn update_elapsed(&mut self) {
        self.state.elapsed_seconds = self.elapsed_seconds();
    }

    /// Everything a checkpoint of this run holds but the module and optimizer records: the
    /// state (elapsed time and schedule written in), config, schedule, callback states, latest
    /// metrics, and the program's data `cursor` and unfinished-epoch `progress`. Add the records
    /// with [`CheckpointPayload::with_records`].
    pub fn checkpoint_meta(
        &self,
        cursor: DataCursor,
        progress: EpochProgress,
    ) -> CheckpointPayload<(), ()> {
        let mut state = self.state.clone();
        state.elapsed_seconds = self.elapsed_seconds();
        state.schedule = Some(self.schedule.state());
        CheckpointPayload {
            format_version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
            created_unix_ms: crate::state::unix_ms_now(),
            trainer_version: TRAINER_VERSION.into(),
            burn_version: BURN_VERSION.into(),
            config: self.config.clone(),
            state,
            cursor,
            rng: RngState::new(self.config.seed),
            schedule: self.schedule.state(),
            callbacks: self.callbacks.states(),
            metrics: self.latest.clone(),
            progress,
            module: (),
            optimizer: (),
            kept_module: None,
            extension: None,
        }
    }

    /// Loads the schedule's and the callbacks' states from a checkpoint; when one is refused,
    /// both keep the states they had.
    pub fn load_states(
        &mut self,
        schedule: serde_json::Value,
        callbacks: std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<()> {
        let (schedule_before, callbacks_before) = (self.schedule.state(), self.callbacks.states());
        let loaded = self
            .schedule
            .load_state(schedule)
            .and_then(|()| self.callbacks.load_states(callbacks));
        if loaded.is_err() {
            // Put back what was there; these states were written by the same objects.
            let _ = self.schedule.load_state(schedule_before);
            let _ = self.callbacks.load_states(callbacks_before);
        }
        loaded
    }

    /// Whether the config's `max_steps` are done.
    pub fn max_steps_reached(&self) -> bool {
        self.config
            .max_steps
            .is_some_and(|max| self.state.global_step >= max)
    }

    /// Whether the config's epochs are done.
    pub fn epochs_done(&self) -> bool {
        self.config
            .epochs
            .is_some_and(|epochs| self.state.epoch >= epochs)
    }
}

/// Whether a run goes on after a round of callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop: the state's stop reason says why.
    Stop,
}

/// What one call of [`StepProgram::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepDone {
    /// An optimizer step was taken (false for a micro-batch whose gradients wait).
    pub optimizer_step: bool,
    /// Skip the cadence at this step: no `BatchEnd` round, so no metrics, checkpoint or sample.
    pub skip_cadence: bool,
    /// Wait this long before the next step; a cancellation ends the wait.
    pub backoff_seconds: f64,
}

/// What happens inside a run, at the level the engine needs: the supervised trainer's batches
/// and optimizer steps, or a job's step hooks. The engine ([`run_loop`]) owns the rest:
/// lifecycle, epochs, callbacks and their requests, checkpoints, cancellation, stopping.
///
/// The required methods give the engine and do one step; the others have defaults for
/// programs without epochs, validation or weights to keep.
pub trait StepProgram {
    /// The run's engine.
    fn engine(&mut self) -> &mut Engine;

    /// A checkpoint of the run as it stands (references to the tensors; the host copy and the
    /// encoding happen when the snapshot is encoded, possibly on another thread).
    fn snapshot(&mut self) -> Result<Snapshot>;

    /// Runs the next batch.
    fn step(&mut self) -> Result<StepDone>;

    /// Whether a snapshot can be taken now: not between the micro-batches of an accumulated
    /// step. A checkpoint request waits until it can.
    fn can_snapshot(&self) -> bool {
        true
    }

    /// Why the run must stop before its next step, if it must (a signal, a cancel file).
    fn cancelled(&self) -> Option<String> {
        None
    }

    /// Checks and preparations before `TrainBegin`.
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }

    /// Acts on what the callbacks of the last round asked of the weights.
    fn after_callbacks(&mut self) {}

    /// Between a round of callbacks and [`after_callbacks`](StepProgram::after_callbacks):
    /// makes the round's requests (stop, checkpoint, keep or restore weights) those of every
    /// peer of a run over several machines, whose callbacks may decide differently (training
    /// metrics, clocks, a signal to one node). Default: one machine, nothing to agree.
    fn agree_requests(&mut self, hook: Hook) -> Result<()> {
        let _ = hook;
        Ok(())
    }

    /// Whether no batch of the current epoch is done yet: the engine opens the epoch
    /// ([`begin_epoch`](StepProgram::begin_epoch), then `EpochBegin`). Programs whose data
    /// streams across epochs (a job's feed) have no epoch rounds and keep the default.
    fn at_epoch_start(&self) -> bool {
        false
    }

    /// Whether every batch of the current epoch is done: the engine closes the epoch
    /// ([`end_epoch`](StepProgram::end_epoch), then `EpochEnd`).
    fn epoch_done(&self) -> bool {
        false
    }

    /// Resets the per-epoch state before `EpochBegin`.
    fn begin_epoch(&mut self) -> Result<()> {
        Ok(())
    }

    /// After the `BatchEnd` round of an optimizer step, unless a callback stopped the run:
    /// validation on a step cadence, say.
    fn after_step(&mut self) -> Result<()> {
        Ok(())
    }

    /// After the checkpoint request of a reported step was served: samples, say.
    fn after_checkpoint(&mut self) -> Result<()> {
        Ok(())
    }

    /// Closes an epoch whose batches are done, before `EpochEnd`: the epoch's metrics,
    /// validation, the epoch's schedule step.
    fn end_epoch(&mut self) -> Result<()> {
        Ok(())
    }

    /// Before `TrainEnd`: the last metrics, the data threads.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Runs `hook` on the callbacks, then acts on their requests; stops when one asked to.
    fn hook(&mut self, hook: Hook) -> Result<Flow> {
        let engine = self.engine();
        engine.with_callbacks(|callbacks, ctx| callbacks.run(hook, ctx))?;
        self.agree_requests(hook)?;
        self.after_callbacks();
        let engine = self.engine();
        if let Some(reason) = engine.control.stop_requested() {
            if engine.state.stop_reason.is_none() {
                engine.state.stop_reason = Some(StopReason::Requested(reason.to_string()));
            }
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// Takes a snapshot for the callbacks if one asked, at a point the run can resume from. A
    /// request made in `on_checkpoint` itself is dropped (it would save forever).
    fn serve_checkpoint_request(&mut self) -> Result<()> {
        if !self.engine().control.checkpoint_requested() || !self.can_snapshot() {
            return Ok(());
        }
        self.engine().control.take_checkpoint_request();
        let snapshot = Arc::new(self.snapshot()?);
        let engine = self.engine();
        engine.with_callbacks(|callbacks, ctx| callbacks.run_snapshot(ctx, &snapshot))?;
        self.hook(Hook::Checkpoint)?;
        self.engine().control.take_checkpoint_request();
        Ok(())
    }

    /// Ends a failed run: callbacks hear of the error, an emergency checkpoint is taken if one
    /// asks for it (where a snapshot can be taken), then the error is handed back.
    fn fail(&mut self, error: TrainerError) -> TrainerError {
        let engine = self.engine();
        engine.state.stop_reason = Some(StopReason::Failed(error.to_string()));
        engine.control.take_checkpoint_request();
        engine.with_callbacks(|callbacks, ctx| callbacks.run_exception(ctx, &error));
        if self.engine().control.checkpoint_requested() && !self.can_snapshot() {
            log::warn!(
                "no emergency checkpoint: the error came inside an optimizer step or between the micro-batches of an accumulated one; the last checkpoint stands"
            );
        }
        // The program's own snapshot code may panic too after a panic elsewhere.
        if let Err(save_error) = contain("the emergency checkpoint", || {
            self.serve_checkpoint_request()
        }) {
            log::error!("the emergency checkpoint failed: {save_error}");
        }
        error
    }

    /// Waits `seconds` before the next step, in slices, until done or cancelled.
    fn back_off(&mut self, seconds: f64) {
        let until = Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0));
        while Instant::now() < until && self.cancelled().is_none() {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

/// The one training loop: drives `program` from `TrainBegin` until its epochs or steps are
/// done, a callback stops it, it is cancelled, or an error ends it (returned as is; call
/// [`StepProgram::fail`] to end the run properly).
///
/// Per batch: `BatchBegin`, the step, `BatchEnd` (unless the step skips the cadence), the
/// program's after-step work, a checkpoint if one was asked for. Around the batches of an
/// epoch: `EpochBegin` and `EpochEnd` for programs that have epochs. At the end: `TrainEnd`
/// and a last checkpoint request. A stop reason is always set when it returns `Ok`.
pub fn run_loop<P: StepProgram + ?Sized>(program: &mut P) -> Result<()> {
    {
        let engine = program.engine();
        engine.state.stop_reason = None;
        engine.control = Control::default();
    }
    program.begin()?;
    if program.hook(Hook::TrainBegin)? == Flow::Continue {
        run_batches(program)?;
    }
    program.finish()?;
    let engine = program.engine();
    engine.update_elapsed();
    engine.state.schedule = Some(engine.schedule.state());
    program.hook(Hook::TrainEnd)?;
    program.serve_checkpoint_request()
}

/// The batches and epochs of [`run_loop`], until something stops the run.
fn run_batches<P: StepProgram + ?Sized>(program: &mut P) -> Result<()> {
    // A run resumed in the middle of an epoch does not open it again.
    let mut epoch_open = !program.at_epoch_start();
    loop {
        let engine = program.engine();
        if engine.max_steps_reached() {
            engine.state.stop_reason = Some(StopReason::MaxStepsReached);
            return Ok(());
        }
        if engine.epochs_done() {
            engine.state.stop_reason = Some(StopReason::EpochsCompleted);
            return Ok(());
        }
        if let Some(reason) = engine.control.stop_requested() {
            engine
                .state
                .stop_reason
                .get_or_insert(StopReason::Requested(reason.to_string()));
            return Ok(());
        }
        if let Some(how) = program.cancelled() {
            program.engine().state.stop_reason = Some(StopReason::Cancelled(how));
            return Ok(());
        }
        if !epoch_open && program.at_epoch_start() {
            program.begin_epoch()?;
            epoch_open = true;
            if program.hook(Hook::EpochBegin)? == Flow::Stop {
                return Ok(());
            }
        }
        if program.epoch_done() {
            program.end_epoch()?;
            epoch_open = false;
            // Early stopping during validation still closes the epoch for the callbacks.
            let flow = program.hook(Hook::EpochEnd)?;
            program.serve_checkpoint_request()?;
            program.engine().update_elapsed();
            if flow == Flow::Stop {
                return Ok(());
            }
            continue;
        }
        if program.hook(Hook::BatchBegin)? == Flow::Stop {
            return Ok(());
        }
        let done = program.step()?;
        if done.skip_cadence {
            if done.backoff_seconds > 0.0 {
                program.back_off(done.backoff_seconds);
            }
            continue;
        }
        let mut flow = program.hook(Hook::BatchEnd)?;
        if done.optimizer_step && flow == Flow::Continue {
            program.after_step()?;
            let engine = program.engine();
            if engine.control.stop_requested().is_some() {
                flow = Flow::Stop;
            }
            if engine.max_steps_reached() {
                engine.state.stop_reason = Some(StopReason::MaxStepsReached);
                flow = Flow::Stop;
            }
        }
        program.serve_checkpoint_request()?;
        program.after_checkpoint()?;
        if flow == Flow::Stop {
            return Ok(());
        }
        if done.backoff_seconds > 0.0 {
            program.back_off(done.backoff_seconds);
        }
    }
}
