//! Over several machines every node runs the callbacks on its own training metrics, clock and
//! signals, so one node may ask to stop (or to checkpoint, or to keep or restore weights) where
//! another does not. The nodes agree on each round's requests instead: a request made on any
//! node holds on every node, at the same step.

use burn::tensor::backend::AutodiffBackend;

use super::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
use crate::callback::Hook;
use crate::error::Result;

/// Requests of rounds without an agreement of their own, kept for the next one.
#[derive(Debug, Default)]
pub(crate) struct HeldRequests {
    stop: Option<String>,
    keep_weights: bool,
    restore_kept_weights: bool,
}

/// The rounds after which the nodes agree: one per batch (after it), the epoch's and the run's
/// opening and closing rounds, and validation's (every node validates at the same points, and
/// a weight kept there must be kept before the next step). A request made before a batch or in
/// `on_checkpoint` waits for the next of these: one collective call per step, not two.
fn agrees_after(hook: Hook) -> bool {
    matches!(
        hook,
        Hook::TrainBegin
            | Hook::EpochBegin
            | Hook::BatchEnd
            | Hook::EpochEnd
            | Hook::ValidationBegin
            | Hook::ValidationEnd
    )
}

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// Makes the requests of the round after `hook` those of every node (a no-op on one
    /// machine, and at the end of the run, where every node stops anyway).
    pub(super) fn agree_node_requests(&mut self, hook: Hook) -> Result<()> {
        let Some(replicas) = self.replicas.as_mut() else {
            return Ok(());
        };
        if !replicas.across_nodes() || hook == Hook::TrainEnd {
            return Ok(());
        }
        let control = &mut self.engine.control;
        let held = replicas.held_requests();
        if let Some(reason) = control.take_stop() {
            held.stop.get_or_insert(reason);
        }
        held.keep_weights |= control.take_keep_weights();
        held.restore_kept_weights |= control.take_restore_kept_weights();
        if !agrees_after(hook) {
            return Ok(());
        }
        let held = std::mem::take(held);
        let asked = vec![
            held.stop.is_some(),
            control.checkpoint_requested(),
            held.keep_weights,
            held.restore_kept_weights,
        ];
        let agreed = replicas.agree(asked)?;
        let control = &mut self.engine.control;
        match held.stop {
            Some(reason) => control.stop(reason),
            None if agreed[0] => control.stop("another node's callbacks stopped the run"),
            None => {}
        }
        if agreed[1] {
            control.save_checkpoint();
        }
        if agreed[2] {
            control.keep_weights();
        }
        if agreed[3] {
            control.restore_kept_weights();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agreement_per_batch() {
        let agreeing: Vec<Hook> = [
            Hook::TrainBegin,
            Hook::EpochBegin,
            Hook::BatchBegin,
            Hook::BatchEnd,
            Hook::Checkpoint,
            Hook::ValidationBegin,
            Hook::ValidationEnd,
            Hook::EpochEnd,
            Hook::TrainEnd,
        ]
        .into_iter()
        .filter(|h| agrees_after(*h))
        .collect();
        assert_eq!(
            agreeing,
            [
                Hook::TrainBegin,
                Hook::EpochBegin,
                Hook::BatchEnd,
                Hook::ValidationBegin,
                Hook::ValidationEnd,
                Hook::EpochEnd
            ]
        );
    }
}
