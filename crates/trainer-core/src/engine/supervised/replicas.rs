//! Rank 0's side of a data-parallel run: it starts the other replicas (threads), tells them
//! each batch, takes part in the gradient average, gathers their training metrics, and ends
//! them: in order when the run ends, at once when it fails.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::replica::{Command, Replica, ReplicaSettings};
use crate::data::{DataLoader, Shard};
use crate::error::{panic_message, Result, TrainerError};
use crate::metric::Split;
use crate::metric::{MetricAccumulator, Metrics, Totals};
use crate::parallel::call_thread::CallThread;
use crate::parallel::collective::{self, CollectiveLease, WatchState, Watchdog};
use crate::parallel::fingerprint::weights_fingerprint;
use crate::parallel::{agreement, flat, host_move};
use crate::step::{TrainStep, ValidStep};

/// How long a failed run waits for its replicas' threads to end before leaving them.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// What a replica is started from: rank 0's model, optimizer and training data, and where each
/// replica trains.
pub(crate) struct ReplicaStart<'a, B: AutodiffBackend, M, O, TB, VB> {
    pub model: &'a M,
    pub optimizer: &'a O,
    pub loader: &'a DataLoader<B, TB>,
    pub valid: Option<&'a DataLoader<B::InnerBackend, VB>>,
    pub test: Option<&'a DataLoader<B::InnerBackend, VB>>,
    pub metrics: &'a Metrics<B::InnerBackend>,
    /// The metrics of validation and test passes.
    pub eval_metrics: &'a Metrics<B::InnerBackend>,
    /// Window totals to go on from, by replica (from a checkpoint; empty for a fresh window).
    pub windows: Vec<Totals>,
    pub devices: &'a [B::Device],
    pub settings: ReplicaSettings,
    pub timeout: Duration,
}

/// Where the other replicas' evaluation totals arrive: `(rank, totals or the failure)`.
pub(crate) type EvalReplies =
    std::sync::mpsc::Receiver<(usize, std::result::Result<Totals, String>)>;

/// The running replicas, as rank 0 sees them.
pub(crate) struct ReplicaSet<B: AutodiffBackend, M> {
    count: usize,
    senders: Vec<Sender<Command<M>>>,
    handles: Vec<JoinHandle<()>>,
    state: Arc<WatchState>,
    watchdog: Option<Watchdog>,
    lease: Option<CollectiveLease>,
    device: B::Device,
    /// This process's rank 0 over all nodes.
    first: usize,
    /// How long rank 0 waits for a replica's answer.
    timeout: Duration,
    /// Time rank 0 spent in gradient all-reduces (waiting for the slowest replica included).
    reducing: std::sync::Mutex<Duration>,
    /// Callback requests waiting for the next agreement between nodes.
    held: crate::engine::node_requests::NodeRequests,
    /// Where rank 0's calls with other nodes run (bounded by the timeout); `None` on one
    /// machine.
    calls: Option<CallThread>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> ReplicaSet<B, M> {
    /// Starts replicas 1 to `devices.len()` from rank 0's state, and registers rank 0 with them.
    pub fn start<O, TB, VB>(
        rank0_device: &B::Device,
        start: ReplicaStart<'_, B, M, O, TB, VB>,
    ) -> Result<Self>
    where
        M: TrainStep<B, TB> + 'static,
        M::InnerModule: ValidStep<B::InnerBackend, VB>,
        O: Optimizer<M, B> + Clone + 'static,
        TB: Send + 'static,
        VB: Send + 'static,
    {
        let count = start.devices.len() + 1;
        let lease =
            CollectiveLease::acquire::<B::InnerBackend>(start.timeout).map_err(|message| {
                TrainerError::Replica {
                    rank: 0,
                    replicas: count,
                    message,
                }
            })?;
        let state = Arc::new(WatchState::default());
        let mut set = Self {
            count,
            senders: Vec::new(),
            handles: Vec::new(),
            state: state.clone(),
            watchdog: None,
            lease: Some(lease),
            device: rank0_device.clone(),
            first: start.settings.first,
            reducing: Default::default(),
            timeout: start.timeout,
            held: Default::default(),
            calls: None,
        };
        if start.settings.nodes.is_some() {
            set.calls = Some(
                CallThread::start("trainer-collective-rank-0".into())
                    .map_err(|message| set.error(0, message))?,
            );
        }
        set.watchdog = Some(
            Watchdog::start::<B::InnerBackend>(state.clone(), start.timeout)
                .map_err(|message| set.error(0, message))?,
        );
        for (index, device) in start.devices.iter().enumerate() {
            let rank = index + 1;
            let replica = Replica {
                rank,
                settings: start.settings.clone(),
                model: start.model.clone(),
                optimizer: if device == rank0_device {
                    start.optimizer.clone()
                } else {
                    host_move::move_optimizer::<B, M, O>(start.optimizer.clone(), device)
                },
                loader: start.loader.sharded(
                    Shard::training(start.settings.first + rank, start.settings.global_count),
                    device.clone(),
                ),
                valid: start
                    .valid
                    .map(|l| l.sharded(Shard::evaluation(rank, count), device.clone())),
                test: start
                    .test
                    .map(|l| l.sharded(Shard::evaluation(rank, count), device.clone())),
                eval_metrics: start.eval_metrics.clone(),
                window: MetricAccumulator::from_totals(
                    start.windows.get(index).cloned().unwrap_or_default(),
                )
                .with_metrics(start.metrics.clone()),
                accumulator: GradientsAccumulator::new(),
                batches: None,
                watch: state.clone(),
                reduce_on: (device != rank0_device).then(|| rank0_device.clone()),
            };
            let (sender, commands) = channel();
            let failures = state.clone();
            let handle = std::thread::Builder::new()
                .name(format!("trainer-replica-{rank}"))
                .spawn(move || {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        replica.run(commands)
                    }));
                    let message = match outcome {
                        Ok(Ok(())) => return,
                        Ok(Err(message)) => message,
                        Err(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
                    };
                    failures.fail(rank, message);
                })
                .map_err(|e| set.error(rank, format!("cannot start its thread: {e}")))?;
            set.senders.push(sender);
            set.handles.push(handle);
        }
        let first = start.settings.first;
        let registered = match start.settings.nodes.clone() {
            // The orchestrator may never answer: wait on another thread, for a bounded time.
            Some(nodes) => {
                let device = rank0_device.clone();
                let timeout = nodes.register_timeout;
                let what = format!(
                    "node {} of {}: registering with the orchestrator at {} (is it running, and have all {} nodes started?)",
                    nodes.rank, nodes.nodes, nodes.orchestrator, nodes.nodes
                );
                collective::within(timeout, &what, move || {
                    collective::register_peer::<B::InnerBackend>(first, count, device, Some(&nodes))
                })
            }
            None => state.watch(|| {
                collective::register_peer::<B::InnerBackend>(
                    first,
                    count,
                    rank0_device.clone(),
                    None,
                )
            }),
        };
        registered.map_err(|message| set.failure_or(message))?;
        if let Some(token) = start.settings.start_token {
            // Only with other nodes: bounded like their all-reduces (see `average`).
            let peers = start.settings.global_count;
            let device = rank0_device.clone();
            collective::within(
                start.timeout,
                "the start check with the other nodes",
                move || agreement::agree::<B::InnerBackend>(first, peers, &device, token),
            )
            .map_err(|message| set.failure_or(message))?;
        }
        Ok(set)
    }

    /// Tells every other replica to train on its batch `step` of `epoch` (and to step the
    /// optimizer with `lr`).
    pub fn batch(&self, epoch: usize, step: usize, lr: Option<f64>) -> Result<()> {
        self.check()?;
        self.send_all(|| Command::Batch { epoch, step, lr })
    }

    /// Averages rank 0's gradients with the other replicas'.
    pub fn average(&self, model: &M, grads: GradientsParams) -> Result<GradientsParams> {
        let started = Instant::now();
        let flat = flat::flatten::<B, M>(model, grads, &self.device);
        let (first, buffer) = (self.first, flat.buffer);
        let averaged = if let Some(calls) = &self.calls {
            // Waiting on another node, burn-collective's server can sit where the watchdog's
            // reset does not reach it (seen in CI with a stopped node): the call runs on a
            // thread of its own and is given up after the timeout (the watchdog stays out of
            // it, so that the error names the call that waited).
            calls.run(
                self.timeout,
                "the all-reduce with the other nodes",
                move || collective::mean::<B::InnerBackend>(first, buffer),
            )
        } else {
            self.state
                .watch(|| collective::mean::<B::InnerBackend>(first, buffer))
        };
        let grads = averaged.map(|averaged| flat::unflatten::<B, M>(model, averaged, &flat.flags));
        *self.reducing.lock().unwrap_or_else(|e| e.into_inner()) += started.elapsed();
        grads.map_err(|message| {
            self.failure_or(format!("the gradient all-reduce failed: {message}"))
        })
    }

    /// Whether the replicas of other machines take part.
    pub fn across_nodes(&self) -> bool {
        self.calls.is_some()
    }

    /// Callback requests waiting for the next agreement between nodes.
    pub fn held_requests(&mut self) -> &mut crate::engine::node_requests::NodeRequests {
        &mut self.held
    }

    /// Which of `flags` (this node's requests) any node raised, every replica of every node
    /// taking part; `flags` as they are on one machine.
    pub fn agree(&self, flags: Vec<bool>) -> Result<Vec<bool>> {
        let Some(calls) = &self.calls else {
            return Ok(flags);
        };
        self.check()?;
        self.send_all(|| Command::Agree(flags.len()))?;
        let (first, device) = (self.first, self.device.clone());
        // Bounded like the all-reduce of gradients with other nodes (see `average`).
        calls
            .run(
                self.timeout,
                "the agreement on the callbacks' requests with the other nodes",
                move || agreement::any::<B::InnerBackend>(first, &device, &flags),
            )
            .map_err(|message| self.failure_or(message))
    }

    /// Time rank 0 spent averaging gradients: laying them out, the all-reduce (with the wait
    /// for the slowest replica) and taking them back.
    pub fn reducing_time(&self) -> Duration {
        *self.reducing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The other replicas' training-metric window totals, by rank; `reset` starts new windows.
    pub fn windows(&self, reset: bool) -> Result<Vec<Totals>> {
        let (reply, answers) = channel();
        self.send_all(|| Command::Window {
            reply: reply.clone(),
            reset,
        })?;
        drop(reply);
        let mut windows: Vec<(usize, Totals)> = (1..self.count)
            .map(|_| self.answer(&answers))
            .collect::<Result<_>>()?;
        windows.sort_by_key(|(rank, _)| *rank);
        Ok(windows.into_iter().map(|(_, totals)| totals).collect())
    }

    /// Tells every other replica to evaluate its shard of `split`'s data; their totals come
    /// with [`eval_totals`](Self::eval_totals).
    pub fn begin_eval(&self, split: Split) -> Result<EvalReplies> {
        let (reply, answers) = channel();
        self.send_all(|| Command::Eval {
            split,
            reply: reply.clone(),
        })?;
        Ok(answers)
    }

    /// The other replicas' metric totals of the evaluation [`begin_eval`](Self::begin_eval)
    /// started, by rank.
    pub fn eval_totals(&self, answers: EvalReplies) -> Result<Vec<Totals>> {
        let mut totals = Vec::with_capacity(self.count - 1);
        for _ in 1..self.count {
            let (rank, result) = self.answer(&answers)?;
            totals.push((rank, result.map_err(|message| self.error(rank, message))?));
        }
        totals.sort_by_key(|(rank, _)| *rank);
        Ok(totals.into_iter().map(|(_, totals)| totals).collect())
    }

    /// Checks that every other replica holds the weights `model` (rank 0's) holds.
    pub fn verify(&self, model: &M, step: usize) -> Result<()> {
        let ours = weights_fingerprint(model);
        for (index, sender) in self.senders.iter().enumerate() {
            let (reply, answers) = channel();
            sender
                .send(Command::Fingerprint(reply))
                .map_err(|_| self.failure_or("a replica ended early".into()))?;
            let theirs = self.answer(&answers)?;
            if theirs != ours {
                return Err(self.error(
                    index + 1,
                    format!("its weights differ from rank 0's after optimizer step {step}"),
                ));
            }
        }
        Ok(())
    }

    /// Gives every other replica rank 0's weights.
    pub fn set_model(&self, model: &M) -> Result<()> {
        self.send_all(|| Command::SetModel(model.clone()))
    }

    /// Ends the replicas after a run that went well: each leaves the collective, then rank 0.
    pub fn finish(mut self) -> Result<()> {
        self.check()?;
        self.send_all(|| Command::Finish)?;
        for handle in std::mem::take(&mut self.handles) {
            let _ = handle.join();
        }
        self.check()?;
        collective::finish_peer::<B::InnerBackend>(self.first)
            .map_err(|message| self.error(0, message))?;
        self.senders.clear();
        self.watchdog = None;
        self.lease = None;
        Ok(())
    }

    /// A replica's answer: an error as soon as a replica has failed, or after the timeout.
    fn answer<T>(&self, answers: &std::sync::mpsc::Receiver<T>) -> Result<T> {
        use std::sync::mpsc::RecvTimeoutError;
        let deadline = Instant::now() + self.timeout;
        loop {
            self.check()?;
            match answers.recv_timeout(Duration::from_millis(50)) {
                Ok(answer) => return Ok(answer),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure_or("a replica ended before answering".into()))
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    return Err(self.error(
                        0,
                        "the other replicas did not answer within the collective timeout".into(),
                    ))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn send_all(&self, command: impl Fn() -> Command<M>) -> Result<()> {
        for sender in &self.senders {
            sender
                .send(command())
                .map_err(|_| self.failure_or("a replica ended early".into()))?;
        }
        Ok(())
    }

    /// The error of the first replica that failed, if one did.
    fn check(&self) -> Result<()> {
        match self.state.failure() {
            Some((rank, message)) => Err(self.error(rank, message)),
            None => Ok(()),
        }
    }

    /// The first replica failure if there was one (it is the cause), else `message` as rank 0's.
    fn failure_or(&self, message: String) -> TrainerError {
        if let Some((rank, message)) = self.state.failure() {
            return self.error(rank, message);
        }
        if self.state.timed_out() {
            return self.error(
                0,
                "the other replicas did not answer within the collective timeout".into(),
            );
        }
        self.error(0, message)
    }

    fn error(&self, rank: usize, message: String) -> TrainerError {
        TrainerError::Replica {
            rank,
            replicas: self.count,
            message,
        }
    }
}

impl<B: AutodiffBackend, M> Drop for ReplicaSet<B, M> {
    /// A run that did not [`finish`](ReplicaSet::finish): free replicas blocked in a collective
    /// call (and the channels they wait on), and wait a little for their threads; the lease
    /// goes when the last of them has ended.
    fn drop(&mut self) {
        if self.lease.is_none() {
            return;
        }
        self.state.abandon();
        self.senders.clear();
        let deadline = Instant::now() + ABORT_GRACE;
        while self.handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            collective::release_blocked::<B::InnerBackend>();
            std::thread::sleep(Duration::from_millis(10));
        }
        collective::release_blocked::<B::InnerBackend>();
        self.watchdog = None;
        let lease = self.lease.take();
        let handles = std::mem::take(&mut self.handles);
        // A replica still stuck in the user's code keeps the lease until it ends (it will not
        // call the collective again: the run is abandoned), so no later run meets it there.
        let reaper = std::thread::Builder::new()
            .name("trainer-replica-reaper".into())
            .spawn(move || {
                for handle in handles {
                    let _ = handle.join();
                }
                drop(lease);
            });
        if reaper.is_err() {
            log::error!(
                "cannot start a thread to wait for the replicas: the collective stays leased"
            );
        }
    }
}
