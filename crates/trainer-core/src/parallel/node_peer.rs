//! The peers of a data-parallel run for programs that own their steps (the job runtime's step
//! hooks): a process's replicas, on one machine or on each node of several. They join, check
//! that all start from the same point, average each step's gradients and agree on flags.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use super::call_thread::CallThread;
use super::collective::{self, CollectiveLease};
use super::peer_group::PeerGroup;
use super::{agreement, flat, global_ranks, NodeConfig};

/// One peer of a data-parallel run, for programs that own their steps: a replica on one
/// device of this process, on one node of the run (on backend `B`, the inner backend of the
/// autodiff backend a program trains on). [`join`](NodePeer::join) makes the one peer of a
/// node with one replica, [`join_replicas`](NodePeer::join_replicas) one per local device.
///
/// Every call is a collective call: every peer makes the same calls in the same order, or the
/// run fails after the timeout. Dropped without [`finish`](NodePeer::finish) (a failed run), it
/// frees the collective, which ends the other peers' pending calls with an error.
pub struct NodePeer<B: Backend> {
    /// This peer's rank over every peer of every node.
    rank: usize,
    /// Peers of the run: replicas per node times nodes.
    peers: usize,
    /// This node's rank and the count of nodes.
    node: usize,
    nodes: usize,
    /// Where this peer's gradients are.
    device: B::Device,
    /// Rank 0's device, when this peer's differs: the collective reduces on one device, and
    /// burn-wgpu cannot copy between devices (the buffer goes through the host).
    reduce_on: Option<B::Device>,
    timeout: Duration,
    /// Shared by the process's peers: ends their waiting calls once one has failed, and holds
    /// the collective until all are gone. `None` once finished.
    group: Option<Arc<PeerGroup>>,
    /// Where this peer's collective calls run.
    calls: CallThread,
}

impl<B: Backend> std::fmt::Debug for NodePeer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodePeer(peer {} of {}, node {} of {})",
            self.rank, self.peers, self.node, self.nodes
        )
    }
}

impl<B: Backend> NodePeer<B> {
    /// Joins the run `nodes` describes as its node's only replica, on `device`, waiting at most
    /// the config's register timeout for every node; each later call waits at most `timeout`
    /// for the others.
    pub fn join(nodes: &NodeConfig, device: B::Device, timeout: Duration) -> Result<Self, String> {
        let mut peers = Self::join_replicas(vec![device], Some(nodes), timeout)?;
        Ok(peers.remove(0))
    }

    /// Joins one replica per device of `devices` (rank 0's first; a device may repeat) to a
    /// run of this process alone, or with `nodes` to a run over several machines, each node
    /// with as many replicas. Returns the peers in rank order, once every peer of every node
    /// has registered (within the node config's register timeout, else `timeout`); each peer
    /// then goes to the thread that runs its replica.
    pub fn join_replicas(
        devices: Vec<B::Device>,
        nodes: Option<&NodeConfig>,
        timeout: Duration,
    ) -> Result<Vec<Self>, String> {
        if devices.is_empty() {
            return Err("a data-parallel run needs at least one device".into());
        }
        if let Some(nodes) = nodes {
            nodes.validate()?;
        }
        let local = devices.len();
        let (first, peers) = global_ranks(nodes, local);
        let group = PeerGroup::start::<B>(CollectiveLease::acquire::<B>(timeout)?)?;
        let (register_timeout, what) = match nodes {
            Some(nodes) => (
                nodes.register_timeout,
                format!(
                    "node {} of {}: registering with the orchestrator at {} (is it running, and have all {} nodes started?)",
                    nodes.rank, nodes.nodes, nodes.orchestrator, nodes.nodes
                ),
            ),
            None => (timeout, format!("registering the {local} replicas")),
        };
        // Every local peer registers at once: each call returns when all have.
        let (sender, receiver) = std::sync::mpsc::channel();
        for k in 0..local {
            let (sender, device, config) = (sender.clone(), devices[0].clone(), nodes.cloned());
            std::thread::Builder::new()
                .name("trainer-collective-register".into())
                .spawn(move || {
                    let registered =
                        collective::register_peer::<B>(first + k, local, device, config.as_ref());
                    let _ = sender.send(registered);
                })
                .map_err(|e| format!("cannot start a thread for {what}: {e}"))?;
        }
        let deadline = Instant::now() + register_timeout;
        for _ in 0..local {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match receiver.recv_timeout(left) {
                Ok(Ok(())) => continue,
                Ok(Err(message)) => format!("{what}: {message}"),
                Err(_) => format!("{what} did not complete within {register_timeout:?}"),
            };
            collective::release_blocked::<B>();
            return Err(failure);
        }
        let (node, count) = nodes.map_or((0, 1), |n| (n.rank, n.nodes));
        let rank0 = devices[0].clone();
        let mut joined = Vec::with_capacity(local);
        for (k, device) in devices.into_iter().enumerate() {
            joined.push(Self {
                rank: first + k,
                peers,
                node,
                nodes: count,
                reduce_on: (device != rank0).then(|| rank0.clone()),
                device,
                timeout,
                group: Some(group.clone()),
                calls: CallThread::start(format!("trainer-collective-peer-{}", first + k))?,
            });
        }
        Ok(joined)
    }

    /// This peer's rank over every peer of every node, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Peers in the run: replicas per node times nodes.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// This node's rank, from 0.
    pub fn node(&self) -> usize {
        self.node
    }

    /// Nodes in the run.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The device the collective reduces on for this peer.
    fn reduce_device(&self) -> &B::Device {
        self.reduce_on.as_ref().unwrap_or(&self.device)
    }

    /// Fails unless every peer passes the same `token` (see [`start_token`]): nodes started
    /// with other settings, or resumed from checkpoints of other steps, are refused before they
    /// train.
    pub fn check_start(&self, token: u64) -> Result<(), String> {
        let (rank, peers, device) = (self.rank, self.peers, self.reduce_device().clone());
        self.call("the start check with the other peers", move || {
            agreement::agree::<B>(rank, peers, &device, token)
        })
    }

    /// `grads` (of `model`'s trainable parameters) averaged over the peers: one flattened
    /// buffer, one all-reduce. A parameter no peer has a gradient for gets none.
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
        let buffer = match &self.reduce_on {
            Some(device) => Tensor::from_data(flat.buffer.into_data(), device),
            None => flat.buffer,
        };
        let rank = self.rank;
        let averaged = self.call("the gradient all-reduce with the other peers", move || {
            collective::mean::<B>(rank, buffer)
        })?;
        let averaged = match &self.reduce_on {
            Some(_) => Tensor::from_data(averaged.into_data(), &self.device),
            None => averaged,
        };
        Ok(flat::unflatten::<A, M>(model, averaged, &flat.flags))
    }

    /// Which of `flags` any peer raised (every peer passes as many).
    pub fn any(&self, flags: Vec<bool>) -> Result<Vec<bool>, String> {
        let (rank, device) = (self.rank, self.reduce_device().clone());
        self.call("the agreement with the other peers", move || {
            agreement::any::<B>(rank, &device, &flags)
        })
    }

    /// Leaves the run, after the last collective call of a run that went well (every peer,
    /// each from its own thread: the call returns when all have).
    pub fn finish(mut self) -> Result<(), String> {
        let rank = self.rank;
        let finished = self.call("leaving the collective with the other peers", move || {
            collective::finish_peer::<B>(rank)
        });
        self.group = None;
        finished
    }

    /// Gives the run up (a peer of this process failed): every peer's waiting and later
    /// collective calls end with an error instead of waiting for the timeout. Dropping a peer
    /// before [`finish`](NodePeer::finish) does the same.
    pub fn abandon(&self) {
        if let Some(group) = &self.group {
            group.fail();
        }
    }

    /// A collective call, bounded by the timeout and ended early when the run is given up.
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        match &self.group {
            Some(group) => group.call(|| self.calls.run(self.timeout, what, call)),
            None => Err(format!("{what}: this peer has left the run")),
        }
    }
}

impl<B: Backend> Drop for NodePeer<B> {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            group.fail();
            collective::release_blocked::<B>();
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
