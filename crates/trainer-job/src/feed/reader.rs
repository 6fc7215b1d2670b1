//! The feed's background thread: batches of a [`ParquetSource`] read, shuffled and cut ahead
//! of the steps, epoch after epoch, from a cursor.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use trainer_core::data::DataCursor;

use super::ParquetSource;
use crate::error::{JobError, Result};

/// A batch of the feed and where it is in its epoch.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// The rows.
    pub batch: RecordBatch,
    /// Its epoch.
    pub epoch: usize,
    /// Its index in the epoch.
    pub index: usize,
    /// Whether it ends the epoch.
    pub last: bool,
}

impl FeedItem {
    /// The cursor after this batch.
    pub fn next_cursor(&self) -> DataCursor {
        if self.last {
            DataCursor {
                epoch: self.epoch + 1,
                batch: 0,
            }
        } else {
            DataCursor {
                epoch: self.epoch,
                batch: self.index + 1,
            }
        }
    }
}

/// Batches from a [`ParquetSource`], read and cut on a background thread, `readahead` ahead.
pub struct Feed {
    receiver: Option<Receiver<Result<FeedItem>>>,
    thread: Option<JoinHandle<()>>,
}

impl Feed {
    /// Starts the thread at `cursor`; epochs follow one another without end.
    pub fn start(
        source: Arc<ParquetSource>,
        seed: u64,
        batch_size: usize,
        readahead: usize,
        cursor: DataCursor,
    ) -> Self {
        let (sender, receiver) = sync_channel(readahead.max(1));
        let thread = std::thread::Builder::new()
            .name("trainer-job-feed".into())
            .spawn(move || {
                let mut first = cursor.batch;
                for epoch in cursor.epoch.. {
                    let mut open = true;
                    let result = source.epoch_batches(seed, epoch, batch_size, first, |item| {
                        open = sender.send(Ok(item)).is_ok();
                        open
                    });
                    if let Err(error) = result {
                        let _ = sender.send(Err(error));
                        return;
                    }
                    if !open {
                        return;
                    }
                    first = 0;
                }
            })
            .expect("the OS starts a thread");
        Self {
            receiver: Some(receiver),
            thread: Some(thread),
        }
    }

    /// The next batch; waits when the thread is behind.
    pub fn next_batch(&mut self) -> Result<FeedItem> {
        let receiver = self.receiver.as_ref().expect("present until drop");
        match receiver.recv() {
            Ok(item) => item,
            Err(_) => {
                // The thread is gone without an error: it panicked (reading the data).
                let why = match self.thread.take().map(JoinHandle::join) {
                    Some(Err(payload)) => format!(
                        "the feed thread panicked: {}",
                        trainer_core::panic_message(payload.as_ref())
                    ),
                    _ => "the feed thread stopped".to_string(),
                };
                Err(JobError::data("(feed)", why))
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Closing the channel makes the thread's next send fail, and it returns.
        drop(self.receiver.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
