//! The upload thread: a queue of files, a sink, retries with backoff, a ledger, and the events
//! of the outcomes for the run's event log.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use trainer_core::callback::CheckpointHandle;
use trainer_core::checkpoint::{companion_dir_name, IndexEntry};
use trainer_core::event::{Event, EventKind, EventSource};

use super::ledger::Ledger;
use super::{ArtifactSink, Digest, RetryPolicy, Upload, UploadKind};

#[derive(Default)]
struct Queue {
    pending: VecDeque<Upload>,
    /// Uploads taken by the thread and not finished.
    busy: usize,
    events: Vec<Event>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A run's uploads: a background thread that sends each queued file to the sink. Cloned
/// handles share it; the thread ends when the last handle is dropped, after the queue.
#[derive(Clone)]
pub struct Uploads {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    checkpoints: Arc<Mutex<CheckpointWatch>>,
}

/// The checkpoints folder's saves not yet queued.
struct CheckpointWatch {
    handle: CheckpointHandle,
    dir: PathBuf,
    /// Saves seen (`None` until the first look, which queues the folder's earlier checkpoints).
    seen: Option<usize>,
}

impl Uploads {
    /// Starts the upload thread. `ledger` is the file that remembers uploads across sessions;
    /// `checkpoints` watches the job's checkpointing callback, whose folder is `dir`.
    pub fn start(
        sink: Box<dyn ArtifactSink>,
        retry: RetryPolicy,
        ledger: PathBuf,
        checkpoints: CheckpointHandle,
        dir: PathBuf,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("artifact-uploads".into())
            .spawn(move || run(&worker, sink, &retry, Ledger::open(&ledger)))
            .expect("spawning the upload thread");
        Self {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
            checkpoints: Arc::new(Mutex::new(CheckpointWatch {
                handle: checkpoints,
                dir,
                seen: None,
            })),
        }
    }

    /// Queues a file; returns at once.
    pub fn queue(&self, upload: Upload) {
        self.shared.lock().pending.push_back(upload);
        self.shared.changed.notify_all();
    }

    /// Queues the checkpoints saved since the last look, each after its companion folder's
    /// files (so that a checkpoint at the sink has its files there). The first look queues
    /// the checkpoints the folder already held: those a killed session did not upload (the
    /// ledger skips the others).
    pub fn queue_new_checkpoints(&self) {
        let mut watch = self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entries = match watch.seen {
            None => {
                let mut entries = watch.handle.index().checkpoints;
                let written = watch.handle.written_since(0);
                for entry in &written {
                    if !entries.iter().any(|e| e.file == entry.file) {
                        entries.push(entry.clone());
                    }
                }
                watch.seen = Some(written.len());
                entries
            }
            Some(seen) => {
                let written = watch.handle.written_since(seen);
                watch.seen = Some(seen + written.len());
                written
            }
        };
        for entry in entries {
            for upload in checkpoint_uploads(&watch.dir, &entry) {
                self.queue(upload);
            }
        }
    }

    /// Events of finished uploads, without waiting.
    fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.shared.lock().events)
    }

    /// Waits until the queue is empty and nothing is in flight.
    fn wait_idle(&self) {
        let mut queue = self.shared.lock();
        while !queue.pending.is_empty() || queue.busy > 0 {
            queue = self
                .shared
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The event source for the run's event log.
    pub fn source(&self) -> UploadSource {
        UploadSource(self.clone())
    }
}

impl Drop for Uploads {
    fn drop(&mut self) {
        // The last handle closes the queue and waits for the thread (which finishes it).
        if Arc::strong_count(&self.thread) == 1 {
            self.shared.lock().closed = true;
            self.shared.changed.notify_all();
            let thread = self
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
    }
}

/// The uploads as an [`EventSource`]: each poll queues new checkpoints and hands over the
/// outcomes so far; settling waits for every queued upload.
pub struct UploadSource(Uploads);

impl EventSource for UploadSource {
    fn poll(&mut self) -> Vec<Event> {
        self.0.queue_new_checkpoints();
        self.0.take_events()
    }

    fn settle(&mut self) -> Vec<Event> {
        self.0.queue_new_checkpoints();
        self.0.wait_idle();
        self.0.take_events()
    }
}

/// The uploads of one saved checkpoint: its companion folder's files, then the file.
fn checkpoint_uploads(dir: &std::path::Path, entry: &IndexEntry) -> Vec<Upload> {
    let mut uploads = Vec::new();
    if let Some(folder) = companion_dir_name(&entry.file) {
        for file in &entry.files {
            uploads.push(Upload {
                name: format!("checkpoints/{folder}/{file}"),
                path: dir.join(&folder).join(file),
                kind: UploadKind::CheckpointFile,
                step: entry.step,
                epoch: entry.epoch,
            });
        }
    }
    uploads.push(Upload {
        name: format!("checkpoints/{}", entry.file),
        path: dir.join(&entry.file),
        kind: UploadKind::Checkpoint,
        step: entry.step,
        epoch: entry.epoch,
    });
    uploads
}

/// The thread: takes uploads until the queue is closed and empty.
fn run(shared: &Shared, mut sink: Box<dyn ArtifactSink>, retry: &RetryPolicy, mut ledger: Ledger) {
    loop {
        let upload = {
            let mut queue = shared.lock();
            loop {
                if let Some(upload) = queue.pending.pop_front() {
                    queue.busy += 1;
                    break upload;
                }
                if queue.closed {
                    return;
                }
                queue = shared
                    .changed
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let event = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            send(sink.as_mut(), &upload, retry, &mut ledger)
        }))
        .unwrap_or_else(|_| Some(failed(&upload, "the sink panicked".into())));
        let mut queue = shared.lock();
        queue.busy -= 1;
        queue.events.extend(event);
        drop(queue);
        shared.changed.notify_all();
    }
}

fn failed(upload: &Upload, reason: String) -> Event {
    log::warn!("artifact {} not uploaded: {reason}", upload.name);
    Event::new(
        EventKind::ArtifactFailed {
            file: upload.name.clone(),
            reason,
        },
        upload.step,
        upload.epoch,
    )
}

/// One upload with its retries; `None` when the ledger says it is there already.
fn send(
    sink: &mut dyn ArtifactSink,
    upload: &Upload,
    retry: &RetryPolicy,
    ledger: &mut Ledger,
) -> Option<Event> {
    let digest = match Digest::of_file(&upload.path) {
        Ok(digest) => digest,
        Err(e) => {
            return Some(failed(
                upload,
                format!("cannot read {}: {e}", upload.path.display()),
            ))
        }
    };
    if ledger.has(&upload.name, &digest.sha256) {
        return None;
    }
    let mut wait = retry.backoff_seconds;
    let mut last = String::new();
    for attempt in 1..=retry.attempts {
        match sink.upload(upload, &digest) {
            Ok(()) => {
                ledger.record(&upload.name, &digest.sha256, digest.bytes, upload.step);
                return Some(Event::new(
                    EventKind::ArtifactUploaded {
                        file: upload.name.clone(),
                        sha256: digest.sha256,
                        bytes: digest.bytes,
                    },
                    upload.step,
                    upload.epoch,
                ));
            }
            Err(e) => {
                log::info!("upload of {} failed (try {attempt}): {e}", upload.name);
                last = e;
                if attempt < retry.attempts {
                    std::thread::sleep(Duration::from_secs_f64(wait));
                    wait = (wait * 2.0).min(super::spec::MAX_SECONDS);
                }
            }
        }
    }
    Some(failed(
        upload,
        format!("{} tries failed; the last: {last}", retry.attempts),
    ))
}
