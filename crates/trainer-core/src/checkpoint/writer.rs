use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A background thread that runs save jobs (encode, write, update the index) one after another,
/// in submission order, with at most `max_in_flight` jobs submitted and unfinished: a submit
/// beyond that waits, so memory for pending snapshots stays bounded.
///
/// Dropping the writer waits for every submitted job.
pub struct CheckpointWriter {
    sender: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    in_flight: Arc<(Mutex<usize>, Condvar)>,
    max_in_flight: usize,
}

impl CheckpointWriter {
    /// Starts the thread; `max_in_flight` is at least 1.
    pub fn new(max_in_flight: usize) -> Self {
        let (sender, receiver) = channel::<Job>();
        let in_flight = Arc::new((Mutex::new(0usize), Condvar::new()));
        let counter = Arc::clone(&in_flight);
        let worker = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                for job in receiver {
                    // A panicking job must not leave the count up (the trainer would wait forever).
                    if catch_unwind(AssertUnwindSafe(job)).is_err() {
                        log::error!(
                            "a checkpoint save panicked; earlier checkpoints are untouched"
                        );
                    }
                    let (count, done) = &*counter;
                    *count.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
                    done.notify_all();
                }
            })
            .expect("spawning the checkpoint writer thread");
        Self {
            sender: Some(sender),
            worker: Some(worker),
            in_flight,
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Queues `job`, first waiting until fewer than `max_in_flight` jobs are unfinished.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let (count, done) = &*self.in_flight;
        let mut count = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count >= self.max_in_flight {
            count = done.wait(count).unwrap_or_else(PoisonError::into_inner);
        }
        *count += 1;
        drop(count);
        if let Some(sender) = &self.sender {
            if sender.send(Box::new(job)).is_err() {
                // The thread is gone (it cannot be, short of a process abort): undo the count.
                *self
                    .in_flight
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) -= 1;
            }
        }
    }

    /// Waits until every submitted job has finished.
    pub fn wait(&self) {
        let (count, done) = &*self.in_flight;
        let mut count = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count > 0 {
            count = done.wait(count).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Jobs submitted and not finished.
    pub fn in_flight(&self) -> usize {
        *self
            .in_flight
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl std::fmt::Debug for CheckpointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter")
            .field("in_flight", &self.in_flight())
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}
