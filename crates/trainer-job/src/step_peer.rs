//! What a step of a data-parallel job (`replicas` or `distributed` in the spec) needs of the
//! other peers: the average of its gradients, which the trainer asks for between backward and
//! its optimizer step.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use trainer_core::parallel::NodePeer;

use crate::error::HookResult;
use crate::hooks::StepContext;

/// A replica's place among the peers of a data-parallel job, as a step sees it (see
/// [`StepContext::average_gradients`]). Made by the runtime.
#[derive(Clone)]
pub struct StepPeer {
    /// A `NodePeer` of the job's inner backend.
    peer: Arc<dyn Any + Send + Sync>,
    /// Gradient averages asked for, for the runtime's check that every step asks for one.
    averages: Arc<AtomicUsize>,
}

impl std::fmt::Debug for StepPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepPeer")
    }
}

impl StepPeer {
    pub(crate) fn new<B: burn::tensor::backend::Backend>(
        peer: Arc<NodePeer<B>>,
        averages: Arc<AtomicUsize>,
    ) -> Self {
        Self { peer, averages }
    }
}

impl StepContext {
    /// `grads` (of `model`'s trainable parameters) averaged over the peers of a data-parallel
    /// job (the spec's `replicas`, and its `distributed` nodes); `grads` as they are otherwise.
    /// A trainer that supports them calls it once per step, between backward and its optimizer
    /// step, so that every peer applies the same update (the runtime fails a data-parallel job
    /// whose trainer does not).
    pub fn average_gradients<B, M>(
        &self,
        model: &M,
        grads: GradientsParams,
    ) -> HookResult<GradientsParams>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
    {
        let Some(step_peer) = &self.peer else {
            return Ok(grads);
        };
        step_peer.averages.fetch_add(1, Ordering::SeqCst);
        let peer = step_peer
            .peer
            .downcast_ref::<NodePeer<B::InnerBackend>>()
            .ok_or("average_gradients: the model's backend is not the job's")?;
        Ok(peer.average::<B, M>(model, grads)?)
    }
}
