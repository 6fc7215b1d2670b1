//! Callbacks: code that runs at fixed points of the training lifecycle.

mod checkpoint_handle;
mod checkpointing;
mod context;
mod early_stopping;
mod event_log;
mod hook;
mod list;
mod progress;
mod tensorboard;
mod terminate_on_non_finite;
mod time_limit;

pub use crate::checkpoint::SaveFailure;
pub use crate::metric::{AvailableMetrics, LatestMetrics};
pub use checkpoint_handle::CheckpointHandle;
pub use checkpointing::Checkpointing;
pub use context::{Context, Control};
pub use early_stopping::{EarlyStopping, EARLY_STOPPING_KEY};
pub use event_log::EventLog;
pub use hook::Hook;
pub use list::CallbackList;
pub use progress::{Progress, ProgressPrinter};
pub use tensorboard::TensorBoard;
pub use terminate_on_non_finite::TerminateOnNonFinite;
pub use time_limit::TimeLimit;

use std::sync::Arc;

use crate::checkpoint::Snapshot;

/// A file a run made besides its checkpoints (the job runtime's samples, say), for
/// [`Callback::on_artifact`]: its kind, the step it was made at, and the file if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// What it is (`sample`): the name of its event in `events.jsonl`. Not one of the event
    /// log's own names (`metrics`, `checkpoint`, ...).
    pub kind: String,
    /// The optimizer step it was made at.
    pub step: usize,
    /// The file it was written to, if any.
    pub file: Option<String>,
}

/// The names of the event log's own events, which an artifact's kind must not take.
pub const RESERVED_EVENT_NAMES: [&str; 8] = [
    "run_started",
    "metrics",
    "validation",
    "epoch",
    "checkpoint",
    "checkpoint_failed",
    "early_stop",
    "run_ended",
];
use crate::error::{Result, TrainerError};

/// Code that runs at the hook points of a run. Every hook is a no-op unless overridden.
///
/// Hooks get a [`Context`]: a read-only view of the state and the latest metrics, and
/// [`Control`] flags to stop the run or ask for a checkpoint. An error returned from a hook ends
/// the run: the trainer calls [`on_exception`](Callback::on_exception) on every callback, then
/// returns the error.
///
/// A callback with state that must survive a resume returns a unique [`key`](Callback::key) and
/// implements [`state`](Callback::state) / [`load_state`](Callback::load_state).
///
/// ```
/// use trainer_core::callback::{Callback, Context};
///
/// /// Stops the run once the training loss is below a target.
/// struct StopAtLoss(f64);
///
/// impl Callback for StopAtLoss {
///     fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
///         let loss = ctx.metrics.train().and_then(|m| m.get("loss")).copied();
///         if loss.is_some_and(|loss| loss < self.0) {
///             ctx.control.stop(format!("train loss below {}", self.0));
///         }
///         Ok(())
///     }
/// }
/// ```
#[allow(unused_variables)]
pub trait Callback: Send {
    /// A unique key for a callback with state; `None` (the default) for a stateless one.
    fn key(&self) -> Option<String> {
        None
    }

    /// Whether the callback runs after all others in each hook (checkpointing does, so that a
    /// checkpoint sees what the other callbacks did in the same hook).
    fn runs_last(&self) -> bool {
        false
    }

    /// Once, before the first epoch of `fit`.
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Once, after the last epoch of `fit`.
    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// At the start of each training epoch.
    fn on_epoch_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// At the end of each full training epoch, after its validation.
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Before each training batch.
    fn on_batch_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// After each training batch (and its optimizer step, when one happens).
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Before a validation pass.
    fn on_validation_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// After a validation pass; `ctx.metrics.valid()` holds its results.
    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Before a test pass.
    fn on_test_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// After a test pass; `ctx.metrics.test()` holds its results.
    fn on_test_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Receives the snapshot the trainer took because a callback asked for one
    /// ([`Control::save_checkpoint`]). Snapshots are taken at safe points: after a batch's
    /// optimizer step (never between micro-batches of an accumulated step), after an epoch
    /// ends, at the end of training, and on an error. Writing it is up to the receiver (see
    /// [`Checkpointing`]).
    fn on_snapshot(&mut self, ctx: &mut Context<'_>, snapshot: &Arc<Snapshot>) -> Result<()> {
        Ok(())
    }
    /// After every callback received a snapshot (with asynchronous saving, the file may still
    /// be being written).
    fn on_checkpoint(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
    /// The run made an artifact (the job runtime's samples every `sample_every` steps).
    fn on_artifact(&mut self, ctx: &mut Context<'_>, artifact: &Artifact) -> Result<()> {
        Ok(())
    }
    /// When the run fails, before the trainer returns `error`.
    fn on_exception(&mut self, ctx: &mut Context<'_>, error: &TrainerError) {}

    /// The state to keep in checkpoints; `None` for a stateless callback.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restores what [`state`](Callback::state) returned.
    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        Ok(())
    }
}
