//! The replicas' collective calls (burn-collective's local server, one per backend type in a
//! process) and their safety net: a replica that fails or stops answering must not leave the
//! others blocked in a call for ever.
//!
//! burn-collective's calls block until every peer has made the same call, and have no timeout.
//! A [`Watchdog`] thread watches the calls of rank 0: when a replica has reported a failure, or
//! a call has waited longer than the timeout, it resets the collective server, which ends every
//! pending call with an error; rank 0 then reports the failure (or the timeout) by name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use std::str::FromStr;

use burn_communication::Address;

use super::NodeConfig;
use burn_collective::{
    all_reduce, finish_collective, register, reset_collective, AllReduceStrategy, CollectiveConfig,
    CollectiveError, PeerId, ReduceOperation,
};

/// How often the watchdog looks.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Registers replica `rank` (its rank over all nodes) of the `local` replicas of this process
/// on `device` with the process's collective server of backend `B`, and with `nodes`, this
/// node with the orchestrator; it returns when every replica (of every node) has registered.
pub(crate) fn register_peer<B: Backend>(
    rank: usize,
    local: usize,
    device: B::Device,
    nodes: Option<&NodeConfig>,
) -> Result<(), String> {
    // Trees of arity 2: burn-collective's ring can slice out of bounds on small tensors, and for
    // two replicas (or two nodes) the tree's one addition is order-free.
    let mut config = CollectiveConfig::default()
        .with_num_devices(local)
        .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
    if let Some(nodes) = nodes {
        let port = nodes.validate()?;
        let address =
            |url: &str| Address::from_str(url).map_err(|e| format!("the address `{url}`: {e}"));
        config = config
            .with_num_nodes(nodes.nodes as u32)
            .with_global_address(address(&nodes.orchestrator)?)
            .with_node_address(address(&nodes.address)?)
            .with_data_service_port(port)
            .with_global_all_reduce_strategy(AllReduceStrategy::Centralized);
    }
    register::<B>(peer(rank), device, config).map_err(|e| format!("registering: {e:?}"))
}

/// Runs `call` on a thread of its own and waits at most `timeout` for it: burn-collective's
/// server waits for the orchestrator without a timeout, and a reset cannot reach it then.
pub(crate) fn within<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    call: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("trainer-collective-call".into())
        .spawn(move || {
            let _ = sender.send(call());
        })
        .map_err(|e| format!("cannot start a thread for {what}: {e}"))?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(format!("{what} did not complete within {timeout:?}")),
    }
}

/// The mean of `tensor` over all replicas (every replica receives the same values).
pub(crate) fn mean<B: Backend>(rank: usize, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, String> {
    let primitive = tensor.into_primitive().tensor();
    all_reduce::<B>(peer(rank), primitive, ReduceOperation::Mean)
        .map(|t| Tensor::from_primitive(TensorPrimitive::Float(t)))
        .map_err(describe)
}

/// A collective error in words.
fn describe(error: CollectiveError) -> String {
    match error {
        CollectiveError::LocalServerMissing => "the collective server stopped (on several \
             machines: another node stopped or lost its connection)"
            .into(),
        CollectiveError::Global(error) => format!("another node failed ({error:?})"),
        other => format!("{other:?}"),
    }
}

/// Leaves the collective (each replica once, at the end of a run that went well).
pub(crate) fn finish_peer<B: Backend>(rank: usize) -> Result<(), String> {
    finish_collective::<B>(peer(rank)).map_err(describe)
}

fn peer(rank: usize) -> PeerId {
    PeerId(rank as u32)
}

/// Whether a detached reset (see [`release_blocked`]) has not reached the server yet.
static RESET_PENDING: AtomicBool = AtomicBool::new(false);

/// The right to use the process's collective server of a backend: one data-parallel run at a
/// time (two runs would mix their peers). Released when dropped.
pub(crate) struct CollectiveLease(());

static LEASED: Mutex<bool> = Mutex::new(false);
static RELEASED: Condvar = Condvar::new();

impl CollectiveLease {
    /// Waits until no other data-parallel run in the process holds the lease (an earlier run's
    /// replica threads hold it until they have all ended), then clears the server of `B` of
    /// anything an earlier run left. Waiting longer than `timeout` is an error.
    pub(crate) fn acquire<B: Backend>(timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        let mut leased = LEASED.lock().unwrap_or_else(PoisonError::into_inner);
        while *leased {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "another data-parallel run in this process (or a replica thread of an earlier one that hung) still holds the collective after {timeout:?}"
                ));
            }
            leased = RELEASED
                .wait_timeout(leased, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *leased = true;
        // A reset an earlier run sent from another thread must not reach this run's peers.
        while RESET_PENDING.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                *leased = false;
                return Err(format!(
                    "the collective of an earlier data-parallel run in this process did not reset within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        reset_collective::<B>();
        Ok(CollectiveLease(()))
    }
}

impl Drop for CollectiveLease {
    fn drop(&mut self) {
        *LEASED.lock().unwrap_or_else(PoisonError::into_inner) = false;
        RELEASED.notify_one();
    }
}

/// What the replicas and the watchdog share.
#[derive(Default)]
pub(crate) struct WatchState {
    /// When rank 0's pending collective call began, if one is pending.
    in_flight: Mutex<Option<Instant>>,
    /// The first replica failure: its rank and message.
    failure: Mutex<Option<(usize, String)>>,
    timed_out: AtomicBool,
    stop: AtomicBool,
    /// Set when rank 0 gave the run up: replicas still running must not call the collective
    /// again (a later run may be using it).
    abandoned: AtomicBool,
}

impl WatchState {
    /// Records a replica's failure (the first one counts).
    pub(crate) fn fail(&self, rank: usize, message: String) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert((rank, message));
    }

    /// The first replica failure, if any.
    pub(crate) fn failure(&self) -> Option<(usize, String)> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks the run as given up (see [`abandoned`](Self::abandoned)).
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Whether rank 0 gave the run up.
    pub(crate) fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Whether a call was ended because it waited past the timeout.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    /// Runs `call` (a collective call of rank 0) under the watchdog's eye.
    pub(crate) fn watch<T>(&self, call: impl FnOnce() -> T) -> T {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let result = call();
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        result
    }
}

/// The thread that ends rank 0's blocked collective calls (see the module's doc).
pub(crate) struct Watchdog {
    state: Arc<WatchState>,
    handle: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching for the collective server of backend `B`.
    pub(crate) fn start<B: Backend>(
        state: Arc<WatchState>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let watched = state.clone();
        let handle = std::thread::Builder::new()
            .name("trainer-collective-watchdog".into())
            .spawn(move || {
                while !watched.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(WATCH_INTERVAL);
                    let since = *watched
                        .in_flight
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let Some(since) = since else { continue };
                    let late = since.elapsed() > timeout;
                    if late {
                        watched.timed_out.store(true, Ordering::SeqCst);
                    }
                    // Again at every look while the call waits: a call that reached the server
                    // after a reset waits for peers that will never come.
                    if late || watched.failure().is_some() {
                        reset_detached::<B>();
                    }
                }
            })
            .map_err(|e| format!("cannot start the collective watchdog: {e}"))?;
        Ok(Self {
            state,
            handle: Some(handle),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Frees replicas blocked in a collective call of backend `B` (a failed run's clean-up).
pub(crate) fn release_blocked<B: Backend>() {
    reset_detached::<B>();
}

/// A reset of the collective server of backend `B` that never blocks its caller.
///
/// burn-collective's server takes messages through a bounded channel and, while it waits for
/// the orchestrator or for another node, reads none: a reset sent then blocks its sender until
/// the server moves again. So the reset goes from a thread of its own; while one is pending,
/// no other is started (a second could not get through either).
fn reset_detached<B: Backend>() {
    if RESET_PENDING.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("trainer-collective-reset".into())
        .spawn(|| {
            reset_collective::<B>();
            RESET_PENDING.store(false, Ordering::SeqCst);
        });
    if spawned.is_err() {
        RESET_PENDING.store(false, Ordering::SeqCst);
    }
}
