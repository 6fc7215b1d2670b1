//! A data-parallel job: replicas in this process (`replicas` in the spec), nodes on several
//! machines (`distributed`), or both. Rank 0 (this thread) joins every peer before the first
//! step, deals each step's batches (node r of n with k replicas takes batches r·k .. r·k + k of
//! every round of n·k), hands its replicas theirs, checks that every trainer averaged its
//! gradients once, agrees with the other nodes on the callbacks' requests and on cancellation,
//! and leaves at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::Hook;
use trainer_core::data::mix_seed;
use trainer_core::engine::NodeRequests;
use trainer_core::parallel::{start_token, NodePeer};

use super::replicas::{Command, Reply};
use super::JobRun;
use crate::error::{JobError, Result};
use crate::feed::FeedItem;
use crate::hooks::{StepContext, StepHooks};
use crate::StepPeer;

/// Rank 0's side of a data-parallel job, once joined.
pub(super) struct JobPeers<B: AutodiffBackend> {
    peer: Arc<NodePeer<B::InnerBackend>>,
    /// Gradient averages rank 0's current step asked for.
    averages: Arc<AtomicUsize>,
    /// Full rounds of `peers` batches in an epoch: the batches after them are left out, so
    /// that every peer takes as many steps, each of a full batch.
    rounds: usize,
    /// Callback requests held for the nodes' next agreement.
    requests: NodeRequests,
    /// The cancellation the nodes agreed on.
    pub(super) agreed_cancel: Option<String>,
}

/// How long rank 0 waits for the replicas' answers once it has given a failed round up (they
/// answer at once: their waiting calls were ended).
const REPLY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A failure of one peer of this process, and when it happened: the first is the cause, the
/// others (peers whose collective call was ended) follow from it.
struct Failure {
    rank: usize,
    at: Instant,
    message: String,
}

impl<B: AutodiffBackend, H: StepHooks<B>> JobRun<'_, B, H> {
    /// The error of local replica `rank`: a replica's as such, rank 0's as the node's when
    /// other nodes take part.
    pub(super) fn peer_error(&self, rank: usize, message: impl Into<String>) -> JobError {
        peer_error(&self.job.spec, rank, message.into())
    }

    /// Joins the other replicas and nodes and, with nodes, checks that all start from the same
    /// point (a no-op for a job of one replica on one machine).
    pub(super) fn join_peers(&mut self) -> Result<()> {
        let job = &self.job.spec;
        let local = job.replicas;
        if local == 1 && job.distributed.is_none() {
            return Ok(());
        }
        let nodes = job.distributed.as_ref().map_or(1, |d| d.nodes);
        let peers = nodes * local;
        // Whole batches only: a short last batch would weigh its items more in the average.
        let full = match &self.source {
            Some(source) => source.rows() / job.dataset.batch_size,
            None => job.mock_batches.unwrap_or(1),
        };
        let rounds = full / peers;
        if rounds == 0 {
            return Err(self.peer_error(
                0,
                format!(
                    "an epoch has {full} full batches of {} rows, fewer than the {peers} peers \
                     ({nodes} node(s) × {local} replica(s))",
                    job.dataset.batch_size
                ),
            ));
        }
        let timeout = crate::distributed::peer_timeout(job);
        let devices = std::iter::once(self.device.clone())
            .chain(self.replicas.iter().map(|r| r.device.clone()))
            .collect();
        let config = job.distributed.as_ref().map(|d| d.node_config());
        let mut joined =
            NodePeer::<B::InnerBackend>::join_replicas(devices, config.as_ref(), timeout)
                .map_err(|m| self.peer_error(0, m))?;
        let peer = joined.remove(0);
        for (k, (replica, joined)) in self.replicas.iter().zip(joined).enumerate() {
            replica
                .send(Command::Join(joined))
                .map_err(|m| self.peer_error(k + 1, m))?;
        }
        self.collect(|_| Ok(()), Instant::now() + timeout)?;
        if let Some(distributed) = &job.distributed {
            let settings = distributed.shared_settings(job, &self.job.trainer);
            let state = &self.engine.state;
            let token = start_token(&settings, state.global_step as u64, state.epoch);
            self.broadcast(|| Command::CheckStart(token))?;
            let checked = peer.check_start(token);
            self.settle(checked, Some(&peer), timeout)?;
        }
        self.peers = Some(JobPeers {
            peer: Arc::new(peer),
            averages: Arc::new(AtomicUsize::new(0)),
            rounds,
            requests: NodeRequests::default(),
            agreed_cancel: None,
        });
        Ok(())
    }

    /// Which local replica takes `item` (`None`: another node's, or a batch after the epoch's
    /// last full round).
    pub(super) fn owner(&self, item: &FeedItem) -> Option<usize> {
        let Some(peers) = &self.peers else {
            return Some(0);
        };
        let (local, total) = (self.job.spec.replicas, peers.peer.peers());
        if item.index >= peers.rounds * total {
            return None;
        }
        let slot = item.index % total;
        (slot / local == peers.peer.node()).then_some(slot % local)
    }

    /// The seed of a step's random draws for local replica `rank`: the job's, and on peers
    /// after the first over all nodes, mixed with the peer's rank (each peer's dropout differs,
    /// as its data does).
    pub(super) fn step_seed(&self, rank: usize, seed: u64) -> u64 {
        let global = self.peers.as_ref().map_or(0, |p| p.peer.rank()) + rank;
        match global {
            0 => seed,
            global => mix_seed(seed, global as u64),
        }
    }

    /// What rank 0's step context carries of the other peers.
    pub(super) fn step_peer(&self) -> Option<StepPeer> {
        self.peers.as_ref().map(|peers| {
            peers.averages.store(0, Ordering::SeqCst);
            StepPeer::new(peers.peer.clone(), peers.averages.clone())
        })
    }

    /// Hands replica k (from 1) the batch `round[k]` with rank 0's context `ctx`, its seed its
    /// own.
    pub(super) fn dispatch(
        &self,
        round: &[FeedItem],
        ctx: &StepContext,
        base_seed: u64,
    ) -> Result<()> {
        for (k, replica) in self.replicas.iter().enumerate() {
            let ctx = StepContext {
                seed: self.step_seed(k + 1, base_seed),
                peer: None,
                ..ctx.clone()
            };
            let batch = round[k + 1].batch.clone();
            replica
                .send(Command::Step { batch, ctx })
                .map_err(|m| self.peer_error(k + 1, m))?;
        }
        Ok(())
    }

    /// The replicas' steps, after rank 0's (`own`): their metrics, or the failure that caused
    /// the others. A trainer that did not average its gradients once fails the step (each
    /// replica checks its own): the peers would drift apart, or wait for each other for ever.
    pub(super) fn finish_round<T>(
        &self,
        own: std::result::Result<T, JobError>,
        step: usize,
    ) -> Result<(T, Vec<BTreeMap<String, f64>>)> {
        let own = own.and_then(|own| match &self.peers {
            Some(peers) => match peers.averages.load(Ordering::SeqCst) {
                1 => Ok(own),
                count => Err(self.peer_error(0, not_averaged(count, step))),
            },
            None => Ok(own),
        });
        let own = match own {
            Ok(own) => own,
            Err(error) => return Err(self.cause(error, self.peers.as_ref().map(|p| &*p.peer))),
        };
        let mut metrics = Vec::with_capacity(self.replicas.len());
        let timeout = crate::distributed::peer_timeout(&self.job.spec);
        self.collect(
            |reply| {
                if let Reply::Stepped(replica) = reply {
                    metrics.push(replica);
                }
                Ok(())
            },
            Instant::now() + timeout,
        )?;
        Ok((own, metrics))
    }

    /// Sends every replica the command `make` gives.
    fn broadcast(&self, make: impl Fn() -> Command<B>) -> Result<()> {
        for (k, replica) in self.replicas.iter().enumerate() {
            replica
                .send(make())
                .map_err(|m| self.peer_error(k + 1, m))?;
        }
        Ok(())
    }

    /// Rank 0's part (`own`, made with `peer`) in a collective call the replicas were sent, then
    /// their answers.
    fn settle(
        &self,
        own: std::result::Result<(), String>,
        peer: Option<&NodePeer<B::InnerBackend>>,
        timeout: std::time::Duration,
    ) -> Result<()> {
        match own {
            Ok(()) => self.collect(|_| Ok(()), Instant::now() + timeout),
            Err(message) => Err(self.cause(self.peer_error(0, message), peer)),
        }
    }

    /// What failed a round in which rank 0 failed with `error`: the earliest failure, rank 0's
    /// or a replica's (the others follow from it). Rank 0 first gives the run up through
    /// `peer`, so that replicas waiting in a collective call end at once and answer.
    fn cause(&self, error: JobError, peer: Option<&NodePeer<B::InnerBackend>>) -> JobError {
        let failed_at = Instant::now();
        if let Some(peer) = peer {
            peer.abandon();
        }
        let deadline = failed_at + REPLY_GRACE;
        let first = self
            .replicas
            .iter()
            .enumerate()
            .filter_map(|(k, replica)| match replica.reply(deadline) {
                Err((Some(at), message)) => Some(Failure {
                    rank: k + 1,
                    at,
                    message,
                }),
                _ => None,
            })
            .min_by_key(|f| f.at);
        match first {
            Some(f) if f.at < failed_at => self.peer_error(f.rank, f.message),
            _ => error,
        }
    }

    /// Every replica's answer to the last command, in rank order; the first failure fails.
    fn collect(&self, mut each: impl FnMut(Reply) -> Result<()>, deadline: Instant) -> Result<()> {
        for (k, replica) in self.replicas.iter().enumerate() {
            let reply = replica
                .reply(deadline)
                .map_err(|(_, m)| self.peer_error(k + 1, m))?;
            each(reply)?;
        }
        Ok(())
    }

    /// The nodes' agreement after `hook`'s round: the callbacks' requests and cancellation
    /// (only with other nodes: in one process rank 0's decisions reach every replica with the
    /// next command).
    pub(super) fn agree_node_requests(&mut self, hook: Hook) -> Result<()> {
        let distributed = self.job.spec.distributed.is_some();
        let Some(peers) = self.peers.as_mut().filter(|_| distributed) else {
            return Ok(());
        };
        if hook == Hook::TrainEnd {
            return Ok(());
        }
        let cancel = self.cancel.reason();
        let peer = peers.peer.clone();
        let (replicas, job) = (&self.replicas, self.job);
        let agreed = peers.requests.settle(
            hook,
            &mut self.engine.control,
            &[cancel.is_some()],
            |flags| {
                let failed = |rank: usize, message: String| {
                    super::engine_error(peer_error(&job.spec, rank, message))
                };
                for (k, replica) in replicas.iter().enumerate() {
                    replica
                        .send(Command::Agree(flags.len()))
                        .map_err(|m| failed(k + 1, m))?;
                }
                let agreed = peer.any(flags).map_err(|m| failed(0, m))?;
                let deadline = Instant::now() + crate::distributed::peer_timeout(&job.spec);
                for (k, replica) in replicas.iter().enumerate() {
                    replica.reply(deadline).map_err(|(_, m)| failed(k + 1, m))?;
                }
                Ok(agreed)
            },
        )?;
        if agreed.is_some_and(|a| a[0]) && peers.agreed_cancel.is_none() {
            peers.agreed_cancel =
                Some(cancel.unwrap_or_else(|| "another node was cancelled".into()));
        }
        Ok(())
    }

    /// Leaves the other peers at the end of a run that went well.
    pub(super) fn leave_peers(&mut self) -> Result<()> {
        let Some(peers) = self.peers.take() else {
            return Ok(());
        };
        self.broadcast(|| Command::Finish)?;
        let timeout = crate::distributed::peer_timeout(&self.job.spec);
        let own = match Arc::try_unwrap(peers.peer) {
            Ok(peer) => peer.finish(),
            // A context of a step still holds it: dropping it resets the collective instead.
            Err(_) => Ok(()),
        };
        self.settle(own, None, timeout)?;
        self.replicas.clear();
        Ok(())
    }
}

/// The error of local replica `rank` of a job of `spec`: a replica's as such, rank 0's as the
/// node's when other nodes take part.
fn peer_error(spec: &crate::spec::JobSpec, rank: usize, message: String) -> JobError {
    match &spec.distributed {
        Some(d) if rank == 0 => JobError::Distributed {
            rank: d.node_rank,
            nodes: d.nodes,
            message,
        },
        _ => JobError::Trainer(trainer_core::TrainerError::Replica {
            rank,
            replicas: spec.replicas,
            message,
        }),
    }
}

/// Why a step of a trainer that did not average its gradients once fails.
pub(super) fn not_averaged(count: usize, step: usize) -> String {
    format!(
        "the trainer called `StepContext::average_gradients` {count} times in step {}, not \
         once: it cannot train data-parallel",
        step + 1
    )
}

/// A replica's metrics as a step's.
pub(super) fn host_metrics<B: AutodiffBackend>(
    metrics: BTreeMap<String, f64>,
) -> BTreeMap<String, crate::hooks::Scalar<B>> {
    metrics
        .into_iter()
        .map(|(name, value)| (name, crate::hooks::Scalar::Host(value)))
        .collect()
}
