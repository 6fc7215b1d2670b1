//! The supervised trainer's side of the nodes' agreement on the callbacks' requests
//! (`engine::node_requests`): its replica set makes the collective call.

use burn::tensor::backend::AutodiffBackend;

use super::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
use crate::callback::Hook;
use crate::error::Result;

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
        let mut held = std::mem::take(replicas.held_requests());
        let settled = held.settle(hook, &mut self.engine.control, &[], |flags| {
            replicas.agree(flags)
        });
        *replicas.held_requests() = held;
        settled.map(|_| ())
    }
}
