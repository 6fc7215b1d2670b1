//! The checkpointing callback's policy: when to save (cadence, a new best, the end, an error,
//! on demand) and what a failed save means for the run. How a save is done, and the folder's
//! bookkeeping, are `checkpoint::folder`'s.
//!
//! One file past 400 lines: the settings, their defaults and the hooks that apply them read best
//! together. The handle a program keeps to ask for saves is `checkpoint_handle.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::checkpoint_handle::Shared;
use super::{Callback, CheckpointHandle, Context};
use crate::checkpoint::{
    best_file_name, open_folder, step_file_name, CheckpointWriter, Retention, SaveJob, SaveReason,
    Snapshot,
};
use crate::config::Frequency;
use crate::error::{Result, TrainerError};
use crate::metric::{Best, Monitor};

/// The key of the checkpointing callback's state in checkpoints.
const KEY: &str = "checkpointing";

/// Writes checkpoints into a folder: every N steps and/or epochs, on a new best of a monitored
/// metric, at the end of training, on an error (an emergency save before the error is returned)
/// and on demand ([`CheckpointHandle::save_now`] or any callback's
/// [`Control::save_checkpoint`](super::Control::save_checkpoint)).
///
/// Files: `epoch-EEEE-step-SSSSSS.ckpt` (EEEE epochs finished, SSSSSS optimizer steps done),
/// `best-<split>-<metric>.ckpt` when a metric is monitored, `latest` (the newest file's name)
/// and `index.json` (what is kept and why). The [`Retention`] policy prunes step checkpoints
/// after each save; the file `latest` names is never removed.
///
/// By default saves are asynchronous: the training thread only takes the snapshot (the
/// device-to-host copy); encoding and writing run on a background thread, one save in flight
/// ([`max_in_flight`](Self::max_in_flight)). The callback waits for its saves at the end of
/// training and before an error is returned. A failed write is logged and leaves earlier
/// checkpoints intact; training goes on unless [`stop_on_failure`](Self::stop_on_failure).
///
/// ```
/// use trainer_core::callback::Checkpointing;
/// use trainer_core::checkpoint::Retention;
/// use trainer_core::metric::{Monitor, Split};
///
/// let checkpointing = Checkpointing::new("runs/1/checkpoints")
///     .every_n_steps(500)
///     .monitor(Monitor::min(Split::Valid, "loss"))
///     .retention(Retention::BestK(3));
/// let handle = checkpointing.handle(); // handle.save_now() from anywhere
/// # let _ = handle;
/// ```
pub struct Checkpointing {
    dir: PathBuf,
    every_steps: Option<usize>,
    every_epochs: Option<usize>,
    monitor: Option<Monitor>,
    save_on_end: bool,
    save_on_error: bool,
    retention: Retention,
    asynchronous: bool,
    max_in_flight: usize,
    stop_on_failure: bool,
    require_final_save: bool,
    shared: Arc<Shared>,
    writer: Option<CheckpointWriter>,
    pending: Vec<SaveReason>,
    state: CheckpointingState,
    last_reading: Option<(usize, u64)>,
    wait_after_snapshot: bool,
}

/// What survives a resume: the best value so far and the last step the cadence fired at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CheckpointingState {
    best: Option<Best>,
    last_step_saved: Option<usize>,
}

impl Checkpointing {
    /// Checkpoints into `dir` (created if needed). With no other setting it saves at the end of
    /// training, on an error, and on demand; it keeps everything.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            every_steps: None,
            every_epochs: None,
            monitor: None,
            save_on_end: true,
            save_on_error: true,
            retention: Retention::All,
            asynchronous: true,
            max_in_flight: 1,
            stop_on_failure: false,
            require_final_save: false,
            shared: Arc::new(Shared::default()),
            writer: None,
            pending: Vec::new(),
            state: CheckpointingState::default(),
            last_reading: None,
            wait_after_snapshot: false,
        }
    }

    /// Saves after every `n`-th optimizer step.
    pub fn every_n_steps(mut self, n: usize) -> Self {
        self.every_steps = Some(n);
        self
    }

    /// Saves after every `n`-th epoch.
    pub fn every_n_epochs(mut self, n: usize) -> Self {
        self.every_epochs = Some(n);
        self
    }

    /// Saves on the cadence of a config [`Frequency`].
    pub fn every(self, frequency: Frequency) -> Self {
        match frequency {
            Frequency::Steps(n) => self.every_n_steps(n),
            Frequency::Epochs(n) => self.every_n_epochs(n),
        }
    }

    /// Saves `best-<split>-<metric>.ckpt` on each new best of `monitor` (ties: the earlier
    /// value stays best) and records the metric in the index.
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Whether to save at the end of training (default true).
    pub fn save_on_end(mut self, save: bool) -> Self {
        self.save_on_end = save;
        self
    }

    /// Whether to save when the run fails, before the error is returned (default true).
    pub fn save_on_error(mut self, save: bool) -> Self {
        self.save_on_error = save;
        self
    }

    /// Which step checkpoints to keep (default all).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Whether to encode and write on a background thread (default true).
    pub fn asynchronous(mut self, asynchronous: bool) -> Self {
        self.asynchronous = asynchronous;
        self
    }

    /// Saves submitted and not finished before the training thread waits (default 1).
    pub fn max_in_flight(mut self, saves: usize) -> Self {
        self.max_in_flight = saves.max(1);
        self
    }

    /// Whether a failed save ends the run with an error (default false: logged, training goes on).
    pub fn stop_on_failure(mut self, stop: bool) -> Self {
        self.stop_on_failure = stop;
        self
    }

    /// Whether a failed save at the end of training ends the run with an error (default false:
    /// counted and reported like any failed save). A job sets it: its last checkpoint is what
    /// an orchestrator collects.
    pub fn require_final_save(mut self, require: bool) -> Self {
        self.require_final_save = require;
        self
    }

    /// A handle to ask for saves and read results while the trainer owns the callback.
    pub fn handle(&self) -> CheckpointHandle {
        CheckpointHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn request(&mut self, ctx: &mut Context<'_>, reason: SaveReason) {
        if !self.pending.contains(&reason) {
            self.pending.push(reason);
        }
        ctx.control.save_checkpoint();
    }

    /// Reports the failed saves not yet reported to the engine (counted in the run's report),
    /// and fails the run for one when so configured: any failure with `stop_on_failure`, the
    /// end-of-training save with `require_final_save`.
    fn check_failures(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let mut book = self.shared.book();
        if book.unreported == 0 {
            return Ok(());
        }
        let new = &book.failures[book.failures.len() - book.unreported..];
        let final_failed = new.iter().find(|f| f.last).cloned();
        let message = new.last().map(|f| f.reason.clone()).unwrap_or_default();
        for _ in 0..book.unreported {
            ctx.control.report_checkpoint_failure();
        }
        book.unreported = 0;
        if let (true, Some(failure)) = (self.require_final_save, final_failed) {
            return Err(TrainerError::Callback {
                callback: KEY.into(),
                message: format!(
                    "the final checkpoint {} was not saved: {}",
                    failure.file, failure.reason
                ),
            });
        }
        if self.stop_on_failure {
            return Err(TrainerError::Callback {
                callback: KEY.into(),
                message: format!("a checkpoint save failed: {message}"),
            });
        }
        Ok(())
    }

    fn check_monitor(&mut self, ctx: &mut Context<'_>) {
        let Some(monitor) = &self.monitor else { return };
        let Some((value, step)) = monitor.read(ctx.metrics) else {
            return;
        };
        let reading = (step, value.to_bits());
        if self.last_reading == Some(reading) {
            return;
        }
        self.last_reading = Some(reading);
        if monitor.improves(value, self.state.best.as_ref().map(|b| b.value)) {
            self.state.best = Some(Best {
                value,
                step: ctx.state.global_step,
                epoch: ctx.state.epoch,
            });
            self.request(ctx, SaveReason::Best);
        }
    }

    fn wait(&self) {
        if let Some(writer) = &self.writer {
            writer.wait();
        }
    }

    fn best_file(&self) -> Option<String> {
        Some(best_file_name(&self.monitor.as_ref()?.name()))
    }
}

impl Callback for Checkpointing {
    fn key(&self) -> Option<String> {
        Some(KEY.into())
    }

    fn runs_last(&self) -> bool {
        true
    }

    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if self.retention.needs_monitor() && self.monitor.is_none() {
            return Err(TrainerError::Callback {
                callback: KEY.into(),
                message: format!(
                    "retention `{}` ranks by a metric: set one with `monitor`",
                    self.retention.describe()
                ),
            });
        }
        if self.every_steps == Some(0) || self.every_epochs == Some(0) {
            return Err(TrainerError::Callback {
                callback: KEY.into(),
                message: "a save cadence must be at least 1".into(),
            });
        }
        let index = open_folder(
            &self.dir,
            ctx.state.global_step,
            self.monitor.as_ref(),
            &self.retention,
        )?;
        self.shared.book().index = index;
        if self.asynchronous && self.writer.is_none() {
            self.writer = Some(CheckpointWriter::new(self.max_in_flight));
        }
        self.pending.clear();
        Ok(())
    }

    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.check_failures(ctx)?;
        if self.shared.save_now.swap(false, Ordering::SeqCst) {
            self.request(ctx, SaveReason::Requested);
        }
        let step = ctx.state.global_step;
        if let Some(n) = self.every_steps {
            if step > 0 && step.is_multiple_of(n) && self.state.last_step_saved != Some(step) {
                self.state.last_step_saved = Some(step);
                self.request(ctx, SaveReason::EveryNSteps);
            }
        }
        self.check_monitor(ctx);
        Ok(())
    }

    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.check_monitor(ctx);
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.check_failures(ctx)?;
        if let Some(monitor) = &self.monitor {
            if let Some(values) = ctx.metrics.get(monitor.split) {
                if !values.contains_key(&monitor.metric) {
                    let known: Vec<&str> = values.keys().map(String::as_str).collect();
                    return Err(TrainerError::Callback {
                        callback: KEY.into(),
                        message: format!(
                            "monitored metric `{}` does not exist; {} has: {}",
                            monitor.name(),
                            monitor.split,
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        if let Some(n) = self.every_epochs {
            if ctx.state.epoch.is_multiple_of(n) {
                self.request(ctx, SaveReason::EveryNEpochs);
            }
        }
        self.check_monitor(ctx);
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.wait();
        self.check_failures(ctx)?;
        if !self.save_on_end {
            return Ok(());
        }
        // When the newest checkpoint is of this very point, it only gains the reason.
        let same_point = if self.pending.is_empty() {
            let mut book = self.shared.book();
            let at = ctx.state;
            book.index
                .add_reason_to_latest_at(
                    at.epoch,
                    at.global_step,
                    at.batch_in_epoch,
                    SaveReason::End,
                )
                .then(|| book.index.clone())
        } else {
            None
        };
        match same_point {
            Some(index) => {
                if let Err(e) = index.save(&self.dir) {
                    log::warn!("checkpoint index not updated: {e}");
                }
            }
            None => {
                self.request(ctx, SaveReason::End);
                self.wait_after_snapshot = true;
            }
        }
        Ok(())
    }

    fn on_exception(&mut self, ctx: &mut Context<'_>, _error: &TrainerError) {
        self.wait();
        if self.save_on_error {
            self.pending.clear();
            self.request(ctx, SaveReason::Error);
            self.wait_after_snapshot = true;
        }
    }

    fn on_snapshot(&mut self, ctx: &mut Context<'_>, snapshot: &Arc<Snapshot>) -> Result<()> {
        let mut reasons = std::mem::take(&mut self.pending);
        if reasons.is_empty() {
            reasons.push(SaveReason::Requested);
        }
        let file = step_file_name(snapshot.epoch(), snapshot.step());
        let best_file = reasons
            .contains(&SaveReason::Best)
            .then(|| self.best_file())
            .flatten();
        let monitored = self
            .monitor
            .as_ref()
            .and_then(|m| m.read(ctx.metrics))
            .map(|(v, _)| v);
        let best = self.state.best;
        let save = SaveJob {
            dir: self.dir.clone(),
            snapshot: Arc::clone(snapshot),
            file,
            best_file,
            best,
            reasons,
            monitored,
            retention: self.retention.clone(),
            book: Arc::clone(&self.shared.book),
        };
        match &self.writer {
            Some(writer) => writer.submit(move || save.run()),
            None => save.run(),
        }
        if std::mem::take(&mut self.wait_after_snapshot) {
            self.wait();
            self.check_failures(ctx)?;
        }
        Ok(())
    }

    fn state(&self) -> Option<serde_json::Value> {
        Some(serde_json::to_value(&self.state).expect("checkpointing state serializes"))
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state).map_err(|e| TrainerError::State {
            key: KEY.into(),
            message: e.to_string(),
        })?;
        Ok(())
    }
}

impl Drop for Checkpointing {
    fn drop(&mut self) {
        // The writer's own drop waits for its saves.
        self.writer.take();
    }
}
