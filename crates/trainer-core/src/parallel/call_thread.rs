//! A peer's collective calls run on a thread of their own, so that the caller can stop waiting
//! after a timeout (burn-collective's calls have none). One long-lived thread per peer rather
//! than one per call: a step makes one or two calls, and starting a thread costs tens of
//! microseconds, a noticeable share of a small model's step.

use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// The thread that makes one peer's collective calls, in order.
pub(crate) struct CallThread {
    jobs: Sender<Job>,
}

impl CallThread {
    /// Starts the thread; it ends when the `CallThread` is dropped and its last call returned.
    pub(crate) fn start(name: String) -> Result<Self, String> {
        let (jobs, received) = channel::<Job>();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                for job in received {
                    job();
                }
            })
            .map_err(|e| format!("cannot start the collective call thread: {e}"))?;
        Ok(Self { jobs })
    }

    /// Runs `call` on the thread and waits at most `timeout` for it. A call that times out
    /// keeps the thread (a later call waits behind it, and times out too): the run is lost.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        what: &str,
        call: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (sender, receiver) = channel();
        self.jobs
            .send(Box::new(move || {
                let _ = sender.send(call());
            }))
            .map_err(|_| format!("{what}: the collective call thread has ended"))?;
        match receiver.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Err(format!("{what} did not complete within {timeout:?}")),
        }
    }
}
