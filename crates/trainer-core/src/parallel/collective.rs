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
use burn_collective::{
    all_reduce, finish_collective, register, reset_collective, AllReduceStrategy, CollectiveConfig,
    PeerId, ReduceOperation,
};

/// How often the watchdog looks.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Registers replica `rank` of `count` on `device` with the process's collective server of
/// backend `B`; it returns when every replica has registered.
pub(crate) fn register_peer<B: Backend>(
    rank: usize,
    count: usize,
    device: B::Device,
) -> Result<(), String> {
    // A tree of arity 2: within a process, burn-collective's ring can slice out of bounds on
    // small tensors, and for two replicas the tree's one addition is order-free.
    let config = CollectiveConfig::default()
        .with_num_devices(count)
        .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
    register::<B>(peer(rank), device, config).map_err(|e| format!("registering: {e:?}"))
}

/// The mean of `tensor` over all replicas (every replica receives the same values).
pub(crate) fn mean<B: Backend>(rank: usize, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, String> {
    let primitive = tensor.into_primitive().tensor();
    all_reduce::<B>(peer(rank), primitive, ReduceOperation::Mean)
        .map(|t| Tensor::from_primitive(TensorPrimitive::Float(t)))
        .map_err(|e| format!("{e:?}"))
}

/// Leaves the collective (each replica once, at the end of a run that went well).
pub(crate) fn finish_peer<B: Backend>(rank: usize) -> Result<(), String> {
    finish_collective::<B>(peer(rank)).map_err(|e| format!("{e:?}"))
}

fn peer(rank: usize) -> PeerId {
    PeerId(rank as u32)
}

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
                        reset_collective::<B>();
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
    reset_collective::<B>();
}
