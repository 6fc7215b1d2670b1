use crate::metric::{AvailableMetrics, LatestMetrics};
use crate::split::Split;
use crate::state::TrainingState;

/// Flags a callback sets to steer the run. The trainer reads them after each hook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    stop: Option<String>,
    save_checkpoint: bool,
    keep_weights: bool,
    restore_kept_weights: bool,
    checkpoint_failures: usize,
}

impl Control {
    /// Asks the trainer to stop at the end of the current hook, with a reason that goes into
    /// the state's `stop_reason`.
    pub fn stop(&mut self, reason: impl Into<String>) {
        self.stop = Some(reason.into());
    }

    /// Asks the trainer to write a checkpoint now.
    pub fn save_checkpoint(&mut self) {
        self.save_checkpoint = true;
    }

    /// Asks the trainer to keep (references to) the current weights, replacing any kept before.
    pub fn keep_weights(&mut self) {
        self.keep_weights = true;
    }

    /// Asks the trainer to put the kept weights back (if it kept any).
    pub fn restore_kept_weights(&mut self) {
        self.restore_kept_weights = true;
    }

    /// Reports a checkpoint save that failed; the engine counts it in the state (and so in the
    /// run's report).
    pub fn report_checkpoint_failure(&mut self) {
        self.checkpoint_failures += 1;
    }

    /// Takes the failures reported since the last call.
    pub fn take_checkpoint_failures(&mut self) -> usize {
        std::mem::take(&mut self.checkpoint_failures)
    }

    /// Takes the keep-weights request, clearing it.
    pub fn take_keep_weights(&mut self) -> bool {
        std::mem::take(&mut self.keep_weights)
    }

    /// Takes the restore request, clearing it.
    pub fn take_restore_kept_weights(&mut self) -> bool {
        std::mem::take(&mut self.restore_kept_weights)
    }

    /// The stop reason, if a stop was asked for.
    pub fn stop_requested(&self) -> Option<&str> {
        self.stop.as_deref()
    }

    /// Takes the stop request, clearing it (a run over several machines holds one made before
    /// a batch until the nodes agree after it).
    pub(crate) fn take_stop(&mut self) -> Option<String> {
        self.stop.take()
    }

    /// Whether a checkpoint was asked for.
    pub fn checkpoint_requested(&self) -> bool {
        self.save_checkpoint
    }

    /// Takes the checkpoint request, clearing it.
    pub fn take_checkpoint_request(&mut self) -> bool {
        std::mem::take(&mut self.save_checkpoint)
    }
}

/// What a hook sees: the state, the latest metrics, the learning rate, and the control flags.
pub struct Context<'a> {
    /// Where the run stands.
    pub state: &'a TrainingState,
    /// Metrics read back so far.
    pub metrics: &'a LatestMetrics,
    /// The learning rate the next optimizer step uses.
    pub learning_rate: f64,
    /// Flags to stop the run or ask for a checkpoint.
    pub control: &'a mut Control,
    /// The metrics each split can produce in this run.
    pub available: &'a AvailableMetrics,
    /// The run's config.
    pub config: &'a crate::config::TrainerConfig,
    /// Batches in a training epoch, when there is training data.
    pub batches_per_epoch: Option<usize>,
}

impl Context<'_> {
    /// The metrics `split` can produce in this run (`accuracy` only once the step returns
    /// logits); empty when the run has no such data or does not validate.
    pub fn metric_names(&self, split: Split) -> Vec<&str> {
        self.available.names(split)
    }
}
