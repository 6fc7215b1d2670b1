//! A job's replicas 1, 2, ... in this process (`replicas` in the spec): each on its own thread
//! and device, with its own trainer instance and state, driven by rank 0's run. The engine
//! loop, callbacks, checkpoints and events stay with rank 0; a step hands every replica its
//! batch, and the trainers average their gradients with each other
//! (`StepContext::average_gradients`), so that every replica applies the same update.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use trainer_core::parallel::NodePeer;

use crate::feed::ParquetSource;
use crate::hooks::{JobContext, ResumeContext, Scalar, StepContext, StepHooks};
use crate::spec::JobSpec;
use crate::state_dict::StateDict;
use crate::StepPeer;

type Peer<B> = NodePeer<<B as AutodiffBackend>::InnerBackend>;

/// A replica not started yet: its trainer and device, behind a function that starts its thread
/// (made where the trainer's type is known to be `Send`).
pub(crate) struct ReplicaSeed<B: AutodiffBackend> {
    start: Box<dyn FnOnce(usize, ReplicaStart) -> std::io::Result<ReplicaHandle<B>>>,
}

impl<B: AutodiffBackend> ReplicaSeed<B> {
    /// A replica that trains with `hooks` on `device`.
    pub fn new<H: StepHooks<B> + Send + 'static>(hooks: H, device: B::Device) -> Self {
        Self {
            start: Box::new(move |rank, start| ReplicaHandle::spawn(rank, hooks, device, start)),
        }
    }

    /// Starts the replica's thread as replica `rank`.
    pub(super) fn start(
        self,
        rank: usize,
        start: ReplicaStart,
    ) -> std::io::Result<ReplicaHandle<B>> {
        (self.start)(rank, start)
    }
}

/// What a replica needs to make its state equal to rank 0's.
pub(super) struct ReplicaStart {
    pub spec: JobSpec,
    pub source: Option<Arc<ParquetSource>>,
    pub schema: SchemaRef,
    pub rows: usize,
    /// Rank 0's state after its preparation (configured, or resumed).
    pub dict: StateDict,
    /// The checkpoint rank 0 resumed from: the trainer's extra and where it was.
    pub resumed: Option<Resumed>,
}

/// The checkpoint a job resumed from, as `load_checkpoint` sees it.
#[derive(Clone)]
pub(super) struct Resumed {
    pub step: usize,
    pub extra: Option<serde_json::Value>,
    pub file: PathBuf,
    pub dir: Option<PathBuf>,
}

/// What rank 0 asks of a replica.
pub(super) enum Command<B: AutodiffBackend> {
    /// Take this place among the peers.
    Join(Peer<B>),
    /// One step on `batch` (the context's `peer` is filled by the replica).
    Step {
        batch: RecordBatch,
        ctx: StepContext,
    },
    /// The start check with the other nodes.
    CheckStart(u64),
    /// An agreement with the other nodes on this many flags (a replica raises none).
    Agree(usize),
    /// Leave the collective and end.
    Finish,
}

/// A replica's answer.
pub(super) enum Reply {
    /// Done (a `Join`, `CheckStart`, `Agree`, `Finish`, or the start).
    Done,
    /// A step done, and its metrics on the host.
    Stepped(BTreeMap<String, f64>),
    /// The replica failed (at that moment) and ended.
    Failed(String, Instant),
}

/// Rank 0's end of a replica's thread.
pub(super) struct ReplicaHandle<B: AutodiffBackend> {
    /// The replica's device.
    pub device: B::Device,
    commands: Sender<Command<B>>,
    replies: Receiver<Reply>,
}

impl<B: AutodiffBackend> ReplicaHandle<B> {
    fn spawn<H: StepHooks<B> + Send + 'static>(
        rank: usize,
        hooks: H,
        device: B::Device,
        start: ReplicaStart,
    ) -> std::io::Result<Self> {
        let (commands, received) = channel();
        let (answer, replies) = channel();
        let on = device.clone();
        std::thread::Builder::new()
            .name(format!("trainer-job-replica-{rank}"))
            .spawn(move || work(hooks, on, start, received, answer))?;
        Ok(Self {
            device,
            commands,
            replies,
        })
    }

    /// Sends `command`; a replica that ended is a failure.
    pub(super) fn send(&self, command: Command<B>) -> Result<(), String> {
        self.commands
            .send(command)
            .map_err(|_| "its thread ended".to_string())
    }

    /// The replica's answer, waiting at most until `deadline`; a failure with the moment it
    /// happened (none when the replica did not answer).
    pub(super) fn reply(&self, deadline: Instant) -> Result<Reply, (Option<Instant>, String)> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.replies.recv_timeout(left) {
            Ok(Reply::Failed(message, at)) => Err((Some(at), message)),
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => Err((
                None,
                format!(
                    "it did not answer within {:?}",
                    left.max(Duration::from_millis(1))
                ),
            )),
            Err(RecvTimeoutError::Disconnected) => Err((None, "its thread ended".into())),
        }
    }
}

/// A replica's thread: its state made equal to rank 0's, then rank 0's commands until `Finish`
/// or a failure.
fn work<B: AutodiffBackend, H: StepHooks<B>>(
    mut hooks: H,
    device: B::Device,
    start: ReplicaStart,
    commands: Receiver<Command<B>>,
    replies: Sender<Reply>,
) {
    let mut state = match guarded("its preparation", || prepare(&mut hooks, &device, start)) {
        Ok(state) => state,
        Err(message) => {
            let _ = replies.send(Reply::Failed(message, Instant::now()));
            return;
        }
    };
    let _ = replies.send(Reply::Done);
    let mut peer: Option<Arc<Peer<B>>> = None;
    let averages = Arc::new(AtomicUsize::new(0));
    while let Ok(command) = commands.recv() {
        let finish = matches!(command, Command::Finish);
        let reply = match command {
            Command::Join(joined) => {
                peer = Some(Arc::new(joined));
                Ok(Reply::Done)
            }
            Command::Step { batch, mut ctx } => guarded("its step", || {
                averages.store(0, Ordering::SeqCst);
                ctx.peer = peer
                    .as_ref()
                    .map(|peer| StepPeer::new(peer.clone(), averages.clone()));
                let step = ctx.step;
                let prepared = hooks
                    .prepare_batch(&mut state, &batch, &device)
                    .map_err(|e| format!("prepare_batch failed at step {step}: {e}"))?;
                let result = hooks
                    .train_step(&mut state, prepared, &ctx)
                    .map_err(|e| format!("train_step failed at step {step}: {e}"))?;
                drop(ctx);
                let count = averages.load(Ordering::SeqCst);
                if peer.is_some() && count != 1 {
                    return Err(super::peers::not_averaged(count, step));
                }
                let metrics = result
                    .metrics
                    .into_iter()
                    .map(|(name, value)| (name, host_value(value)))
                    .collect();
                Ok(Reply::Stepped(metrics))
            }),
            Command::CheckStart(token) => with_peer::<B>(&peer, |p| p.check_start(token)),
            Command::Agree(flags) => with_peer::<B>(&peer, |p| p.any(vec![false; flags]).map(drop)),
            Command::Finish => match peer.take().map(Arc::try_unwrap) {
                Some(Ok(joined)) => joined.finish().map(|()| Reply::Done),
                // A trainer kept a step's peer: dropping it frees the collective instead.
                _ => Ok(Reply::Done),
            },
        };
        let failed = reply.is_err();
        let at = Instant::now();
        if failed {
            // Ends the other peers' waiting calls: rank 0 learns of the failure at once.
            if let Some(peer) = peer.take() {
                peer.abandon();
            }
        }
        let reply = reply.unwrap_or_else(|message| Reply::Failed(message, at));
        if replies.send(reply).is_err() || failed || finish {
            return;
        }
    }
}

/// The replica's state: configured like rank 0's, then loaded with rank 0's state dict (and
/// the extra of the checkpoint it resumed from), so that both start equal.
fn prepare<B: AutodiffBackend, H: StepHooks<B>>(
    hooks: &mut H,
    device: &B::Device,
    start: ReplicaStart,
) -> Result<H::State, String> {
    let ctx = JobContext {
        spec: &start.spec,
        schema: start.schema.clone(),
        rows: start.rows,
        columns: start
            .source
            .as_deref()
            .map(|s| s as &dyn crate::hooks::ColumnReader),
    };
    hooks
        .setup(&ctx)
        .map_err(|e| format!("setup failed: {e}"))?;
    let mut state = hooks
        .configure(&ctx, device)
        .map_err(|e| format!("configure failed: {e}"))?;
    hooks
        .load_state_dict(&mut state, start.dict, device)
        .map_err(|e| format!("load_state_dict (rank 0's state) failed: {e}"))?;
    if let Some(resumed) = start.resumed {
        let ctx = ResumeContext {
            step: resumed.step,
            checkpoint_file: &resumed.file,
            checkpoint_dir: resumed.dir.as_deref(),
        };
        hooks
            .load_checkpoint(&mut state, resumed.extra, &ctx)
            .map_err(|e| format!("load_checkpoint failed: {e}"))?;
    }
    Ok(state)
}

/// Runs `f`, a panic in it an error like any other.
fn guarded<T>(during: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(format!(
            "{during} panicked: {}",
            trainer_core::panic_message(payload.as_ref())
        ))
    })
}

fn with_peer<B: AutodiffBackend>(
    peer: &Option<Arc<Peer<B>>>,
    call: impl FnOnce(&Peer<B>) -> Result<(), String>,
) -> Result<Reply, String> {
    let peer = peer
        .as_ref()
        .ok_or("a collective call before the replica joined")?;
    call(peer).map(|()| Reply::Done)
}

/// A step metric on the host: a replica's device is not rank 0's, so its metrics cross as
/// numbers (read once per step, after the step's all-reduce has synchronised the device).
fn host_value<B: AutodiffBackend>(value: Scalar<B>) -> f64 {
    match value {
        Scalar::Host(value) => value,
        Scalar::Device(tensor) => tensor.into_scalar().elem::<f64>(),
    }
}
