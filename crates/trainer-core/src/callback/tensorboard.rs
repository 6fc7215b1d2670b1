//! The `TensorBoard` callback: the event log's events as TensorBoard event files.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Artifact, Callback, Context, EventLog};
use crate::checkpoint::Snapshot;
use crate::error::{Result, TrainerError};

/// Writes the run's scalars into TensorBoard event files in a folder (`tensorboard --logdir`
/// reads it): every training reading and validation or test pass as `<split>/<metric>` (loss,
/// accuracy, the lr, throughput, your metrics) at its step, every epoch's means as
/// `epoch/<metric>`, and the run's config as text. The same events as
/// [`EventLog`]'s `events.jsonl`, from the same hooks.
///
/// A resumed run continues the file the checkpoint names, cut to the length it had then, so no
/// scalar is written twice (the same rule as `events.jsonl`). Values are TensorBoard's `f32`.
///
/// ```no_run
/// use trainer_core::callback::TensorBoard;
///
/// let tensorboard = TensorBoard::new("runs/1/tensorboard");
/// # let _ = tensorboard;
/// ```
pub struct TensorBoard {
    log: EventLog,
}

impl TensorBoard {
    /// Writes event files into `dir` (created if needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            log: EventLog::new(&dir)
                .jsonl(false)
                .csv(false)
                .tensorboard(dir)
                .state_key("tensorboard"),
        }
    }

    /// The config the run's text summary shows, instead of the trainer's.
    pub fn run_config(mut self, config: serde_json::Value) -> Self {
        self.log = self.log.run_config(config);
        self
    }
}

impl Callback for TensorBoard {
    fn key(&self) -> Option<String> {
        self.log.key()
    }
    fn runs_last(&self) -> bool {
        self.log.runs_last()
    }
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_train_begin(ctx)
    }
    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_train_end(ctx)
    }
    fn on_epoch_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_epoch_begin(ctx)
    }
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_epoch_end(ctx)
    }
    fn on_batch_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_batch_begin(ctx)
    }
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_batch_end(ctx)
    }
    fn on_validation_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_validation_begin(ctx)
    }
    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_validation_end(ctx)
    }
    fn on_test_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_test_begin(ctx)
    }
    fn on_test_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_test_end(ctx)
    }
    fn on_snapshot(&mut self, ctx: &mut Context<'_>, snapshot: &Arc<Snapshot>) -> Result<()> {
        self.log.on_snapshot(ctx, snapshot)
    }
    fn on_checkpoint(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.log.on_checkpoint(ctx)
    }
    fn on_artifact(&mut self, ctx: &mut Context<'_>, artifact: &Artifact) -> Result<()> {
        self.log.on_artifact(ctx, artifact)
    }
    fn on_exception(&mut self, ctx: &mut Context<'_>, error: &TrainerError) {
        self.log.on_exception(ctx, error)
    }
    fn state(&self) -> Option<serde_json::Value> {
        self.log.state()
    }
    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.log.load_state(state)
    }
}
