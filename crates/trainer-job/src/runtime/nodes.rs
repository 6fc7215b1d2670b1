//! A distributed job (`distributed` in the spec): this process is one node of a data-parallel
//! run. It joins the others before the first step, takes its shard of every epoch's batches,
//! gives each step the gradient average (`StepContext::average_gradients`), agrees with the
//! other nodes on the callbacks' requests and on cancellation, and leaves at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::Hook;
use trainer_core::data::mix_seed;
use trainer_core::engine::NodeRequests;
use trainer_core::parallel::{start_token, NodePeer};

use super::JobRun;
use crate::error::{JobError, Result};
use crate::feed::FeedItem;
use crate::hooks::StepHooks;
use crate::StepPeer;

/// This node's side of a distributed job.
pub(super) struct JobNodes<B: AutodiffBackend> {
    peer: Arc<NodePeer<B::InnerBackend>>,
    /// Gradient averages the current step asked for.
    averages: Arc<AtomicUsize>,
    /// Full rounds of `nodes` batches in an epoch: the batches after them are left out, so
    /// that every node takes as many steps, each of a full batch.
    rounds: usize,
    /// Callback requests held for the nodes' next agreement.
    requests: NodeRequests,
    /// The cancellation the nodes agreed on.
    pub(super) agreed_cancel: Option<String>,
}

impl<B: AutodiffBackend, H: StepHooks<B>> JobRun<'_, B, H> {
    fn node_error(&self, message: impl Into<String>) -> JobError {
        let spec = self.job.spec.distributed.as_ref();
        JobError::Distributed {
            rank: spec.map_or(0, |d| d.node_rank),
            nodes: spec.map_or(1, |d| d.nodes),
            message: message.into(),
        }
    }

    /// Joins the other nodes and checks that all start from the same point (a no-op on one
    /// machine).
    pub(super) fn join_nodes(&mut self) -> Result<()> {
        let Some(spec) = self.job.spec.distributed.clone() else {
            return Ok(());
        };
        let job = &self.job.spec;
        // Whole batches only: a short last batch would weigh its items more in the average.
        let full = match &self.source {
            Some(source) => source.rows() / job.dataset.batch_size,
            None => job.mock_batches.unwrap_or(1),
        };
        let rounds = full / spec.nodes;
        if rounds == 0 {
            return Err(self.node_error(format!(
                "an epoch has {full} full batches of {} rows, fewer than the {} nodes",
                job.dataset.batch_size, spec.nodes
            )));
        }
        let peer = NodePeer::<B::InnerBackend>::join(
            &spec.node_config(),
            self.device.clone(),
            spec.timeout(),
        )
        .map_err(|m| self.node_error(m))?;
        let settings = spec.shared_settings(job, &self.job.trainer);
        let state = &self.engine.state;
        peer.check_start(start_token(
            &settings,
            state.global_step as u64,
            state.epoch,
        ))
        .map_err(|m| self.node_error(m))?;
        self.nodes = Some(JobNodes {
            peer: Arc::new(peer),
            averages: Arc::new(AtomicUsize::new(0)),
            rounds,
            requests: NodeRequests::default(),
            agreed_cancel: None,
        });
        Ok(())
    }

    /// Whether `item` is this node's: node r of n takes batches r, r + n, ... of the epoch's
    /// full rounds.
    pub(super) fn is_own(&self, item: &FeedItem) -> bool {
        match &self.nodes {
            Some(nodes) => {
                let count = nodes.peer.nodes();
                item.index < nodes.rounds * count && item.index % count == nodes.peer.rank()
            }
            None => true,
        }
    }

    /// The seed of a step's random draws: the job's, and on nodes after the first, mixed with
    /// the node's rank (each node's dropout differs, as its data does).
    pub(super) fn step_seed(&self, seed: u64) -> u64 {
        match &self.nodes {
            Some(nodes) if nodes.peer.rank() > 0 => mix_seed(seed, nodes.peer.rank() as u64),
            _ => seed,
        }
    }

    /// What a step's context carries of the other nodes.
    pub(super) fn step_peer(&self) -> Option<StepPeer> {
        self.nodes.as_ref().map(|nodes| {
            nodes.averages.store(0, Ordering::SeqCst);
            StepPeer::new(nodes.peer.clone(), nodes.averages.clone())
        })
    }

    /// Fails a distributed step whose trainer did not average its gradients once: the nodes
    /// would drift apart (or wait for each other for ever).
    pub(super) fn check_averaged(&self, step: usize) -> Result<()> {
        let Some(nodes) = &self.nodes else {
            return Ok(());
        };
        match nodes.averages.load(Ordering::SeqCst) {
            1 => Ok(()),
            count => Err(self.node_error(format!(
                "the trainer {:?} called `StepContext::average_gradients` {count} times in step \
                 {}, not once: it cannot train distributed",
                self.job.trainer,
                step + 1
            ))),
        }
    }

    /// The nodes' agreement after `hook`'s round: the callbacks' requests and cancellation.
    pub(super) fn agree_node_requests(&mut self, hook: Hook) -> Result<()> {
        let Some(nodes) = self.nodes.as_mut() else {
            return Ok(());
        };
        if hook == Hook::TrainEnd {
            return Ok(());
        }
        let cancel = self.cancel.reason();
        let peer = nodes.peer.clone();
        let agreed = nodes.requests.settle(
            hook,
            &mut self.engine.control,
            &[cancel.is_some()],
            |flags| {
                peer.any(flags).map_err(|message| {
                    super::engine_error(JobError::Distributed {
                        rank: peer.rank(),
                        nodes: peer.nodes(),
                        message,
                    })
                })
            },
        )?;
        if agreed.is_some_and(|a| a[0]) && nodes.agreed_cancel.is_none() {
            nodes.agreed_cancel =
                Some(cancel.unwrap_or_else(|| "another node was cancelled".into()));
        }
        Ok(())
    }

    /// Leaves the other nodes at the end of a run that went well.
    pub(super) fn leave_nodes(&mut self) -> Result<()> {
        let Some(nodes) = self.nodes.take() else {
            return Ok(());
        };
        match Arc::try_unwrap(nodes.peer) {
            Ok(peer) => peer.finish().map_err(|m| self.node_error(m)),
            // A context of a step still holds it: dropping it resets the collective instead.
            Err(_) => Ok(()),
        }
    }
}
