//! One process as one node of a data-parallel run over several machines, for programs that own
//! their steps (the job runtime's step hooks): it joins the other nodes, checks that all start
//! from the same point, averages each step's gradients and agrees on flags with them.

use std::time::Duration;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::collective::{self, CollectiveLease};
use super::{agreement, flat, NodeConfig};

/// This process's place among the nodes of a run (one replica per node), on backend `B` (the
/// inner backend of the autodiff backend a program trains on).
///
/// Every call is a collective call: every node makes the same calls in the same order, or the
/// run fails after the timeout. Dropped without [`finish`](NodePeer::finish) (a failed run), it
/// frees the collective for a later run in the process.
pub struct NodePeer<B: Backend> {
    rank: usize,
    nodes: usize,
    device: B::Device,
    timeout: Duration,
    lease: Option<CollectiveLease>,
}

impl<B: Backend> std::fmt::Debug for NodePeer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodePeer(node {} of {})", self.rank, self.nodes)
    }
}

impl<B: Backend> NodePeer<B> {
    /// Joins the run `nodes` describes with `device`, waiting at most the config's register
    /// timeout for every node; each later call waits at most `timeout` for the others.
    pub fn join(nodes: &NodeConfig, device: B::Device, timeout: Duration) -> Result<Self, String> {
        nodes.validate()?;
        let lease = CollectiveLease::acquire::<B>(timeout)?;
        let what = format!(
            "node {} of {}: registering with the orchestrator at {} (is it running, and have all {} nodes started?)",
            nodes.rank, nodes.nodes, nodes.orchestrator, nodes.nodes
        );
        let (config, for_call) = (nodes.clone(), device.clone());
        let registered = collective::within(nodes.register_timeout, &what, move || {
            collective::register_peer::<B>(config.rank, 1, for_call, Some(&config))
        });
        let peer = Self {
            rank: nodes.rank,
            nodes: nodes.nodes,
            device,
            timeout,
            lease: Some(lease),
        };
        registered.map(|()| peer)
    }

    /// This node's rank, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Nodes in the run.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Fails unless every node passes the same `token` (see [`start_token`]): nodes started
    /// with other settings, or resumed from checkpoints of other steps, are refused before they
    /// train.
    pub fn check_start(&self, token: u64) -> Result<(), String> {
        let (rank, nodes, device) = (self.rank, self.nodes, self.device.clone());
        collective::within(
            self.timeout,
            "the start check with the other nodes",
            move || agreement::agree::<B>(rank, nodes, &device, token),
        )
    }

    /// `grads` (of `model`'s trainable parameters) averaged over the nodes: one flattened
    /// buffer, one all-reduce. A parameter no node has a gradient for gets none.
    pub fn average<A, M>(
        &self,
        model: &M,
        grads: GradientsParams,
    ) -> Result<GradientsParams, String>
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<A>,
    {
        let flat = flat::flatten::<A, M>(model, grads, &self.device);
        let (rank, buffer) = (self.rank, flat.buffer);
        let averaged = collective::within(
            self.timeout,
            "the gradient all-reduce with the other nodes",
            move || collective::mean::<B>(rank, buffer),
        )?;
        Ok(flat::unflatten::<A, M>(model, averaged, &flat.flags))
    }

    /// Which of `flags` any node raised (every node passes as many).
    pub fn any(&self, flags: Vec<bool>) -> Result<Vec<bool>, String> {
        let (rank, device) = (self.rank, self.device.clone());
        collective::within(
            self.timeout,
            "the agreement with the other nodes",
            move || agreement::any::<B>(rank, &device, &flags),
        )
    }

    /// Leaves the run, after the last collective call of a run that went well.
    pub fn finish(mut self) -> Result<(), String> {
        let finished = collective::finish_peer::<B>(self.rank);
        self.lease = None;
        finished
    }
}

impl<B: Backend> Drop for NodePeer<B> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            collective::release_blocked::<B>();
            drop(lease);
        }
    }
}

/// The token [`NodePeer::check_start`] compares: a hash of what the nodes must share (the
/// settings that decide the run, as the program sees them) and where they stand.
pub fn start_token(settings: &[u8], global_step: u64, epoch: usize) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut hash = DefaultHasher::new();
    hash.write(settings);
    agreement::start_token(hash.finish(), global_step, epoch, 0)
}
