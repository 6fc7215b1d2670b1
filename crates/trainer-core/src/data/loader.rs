use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;

use burn::data::{dataloader::batcher::Batcher, dataset::Dataset};
use burn::tensor::backend::Backend;

use super::handoff::{CloseOnDrop, Handoff};
use super::{epoch_order, BatchSource, DataCursor, DatasetBatches, PreparedBatch};
use crate::error::{panic_message, Result, TrainerError};
use crate::split::Split;

/// Delivers the batches of a data set, epoch by epoch, in an order that depends only on
/// `(seed, epoch)`.
///
/// ```
/// # use burn::data::{dataloader::batcher::Batcher, dataset::InMemDataset};
/// # use burn_ndarray::NdArray;
/// use trainer_core::data::{DataCursor, DataLoader};
///
/// # #[derive(Clone)] struct Collect;
/// # impl<B: burn::tensor::backend::Backend> Batcher<B, u32, Vec<u32>> for Collect {
/// #     fn batch(&self, items: Vec<u32>, _: &B::Device) -> Vec<u32> { items }
/// # }
/// let data = InMemDataset::new((0..10u32).collect());
/// let loader = DataLoader::<NdArray, Vec<u32>>::builder(data, Collect, Default::default())
///     .batch_size(4)
///     .shuffle(42)
///     .build();
/// assert_eq!(loader.num_batches(), 3);
/// let rest: Vec<Vec<u32>> = loader
///     .iter(DataCursor { epoch: 0, batch: 1 })
///     .unwrap()
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(rest.len(), 2);
/// ```
pub struct DataLoader<B: Backend, O> {
    source: Arc<dyn BatchSource<B, O>>,
    split: Split,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    prefetch: usize,
    device: B::Device,
    shard: Shard,
}

/// Which of the epoch's batches a loader delivers: with `count` replicas, the one of `rank`
/// takes batches `rank`, `rank + count`, `rank + 2 * count`, ... of the epoch's order. For
/// training every replica takes the same number of them (a last, incomplete round is left out,
/// so no replica waits for a batch that does not come); with `whole` (evaluation) the last round
/// is dealt too, so that the shards together hold every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shard {
    /// This replica's place, from 0.
    pub rank: usize,
    /// Replicas in all (1 and 0 both mean one).
    pub count: usize,
    /// Deal the last, incomplete round of batches too.
    pub whole: bool,
}

impl Shard {
    /// The shard of replica `rank` of `count` for training (whole rounds only).
    pub fn training(rank: usize, count: usize) -> Self {
        Self {
            rank,
            count,
            whole: false,
        }
    }

    /// The shard of replica `rank` of `count` for evaluation (every batch dealt).
    pub fn evaluation(rank: usize, count: usize) -> Self {
        Self {
            rank,
            count,
            whole: true,
        }
    }
}

impl<B: Backend, O> Clone for DataLoader<B, O> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            split: self.split,
            batch_size: self.batch_size,
            seed: self.seed,
            drop_last: self.drop_last,
            prefetch: self.prefetch,
            device: self.device.clone(),
            shard: self.shard,
        }
    }
}

/// Builds a [`DataLoader`]: batch size 1, no shuffling, two batches of prefetch by default.
pub struct DataLoaderBuilder<B: Backend, O> {
    loader: DataLoader<B, O>,
}

impl<B: Backend, O> DataLoaderBuilder<B, O> {
    /// Items per batch (at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.loader.batch_size = batch_size.max(1);
        self
    }
    /// Shuffle each epoch with a permutation drawn from `(seed, epoch)`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.loader.seed = Some(seed);
        self
    }
    /// Drop the last batch of an epoch when it is smaller than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.loader.drop_last = drop_last;
        self
    }
    /// Batches built ahead on the background thread (1 to
    /// [`MAX_PREFETCH_BATCHES`](crate::MAX_PREFETCH_BATCHES)).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.loader.prefetch = batches.clamp(1, crate::config::MAX_PREFETCH_BATCHES);
        self
    }
    /// Which split the loader serves; it names the data in errors.
    pub fn split(mut self, split: Split) -> Self {
        self.loader.split = split;
        self
    }
    /// The loader.
    pub fn build(self) -> DataLoader<B, O> {
        self.loader
    }
}

impl<B: Backend, O: Send + 'static> DataLoader<B, O> {
    /// Starts a loader over a burn data set and batcher; batches are made on `device`.
    pub fn builder<D, T, I>(dataset: D, batcher: T, device: B::Device) -> DataLoaderBuilder<B, O>
    where
        D: Dataset<I> + 'static,
        T: Batcher<B, I, O> + 'static,
        I: Send + 'static,
    {
        Self::from_source(Arc::new(DatasetBatches::new(dataset, batcher)), device)
    }

    /// Starts a loader over any [`BatchSource`].
    pub fn from_source(
        source: Arc<dyn BatchSource<B, O>>,
        device: B::Device,
    ) -> DataLoaderBuilder<B, O> {
        DataLoaderBuilder {
            loader: DataLoader {
                source,
                split: Split::Train,
                batch_size: 1,
                seed: None,
                drop_last: false,
                prefetch: 2,
                device,
                shard: Shard::training(0, 1),
            },
        }
    }

    /// Items in the data set.
    pub fn num_items(&self) -> usize {
        self.source.len()
    }

    /// Batches in one epoch (this shard's, when the loader is one of several).
    pub fn num_batches(&self) -> usize {
        let (all, Shard { rank, count, whole }) = (self.all_batches(), self.shard);
        if whole {
            // Batches `rank + k * count` below `all`.
            (all + count - 1 - rank.min(count - 1)) / count
        } else {
            all / count
        }
    }

    /// Batches in one epoch of the whole data set.
    fn all_batches(&self) -> usize {
        let n = self.source.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The loader of replica `shard.rank` of `shard.count`, making its batches on `device`.
    pub fn sharded(&self, shard: Shard, device: B::Device) -> Self {
        Self {
            shard: Shard {
                count: shard.count.max(1),
                ..shard
            },
            device,
            ..self.clone()
        }
    }

    /// Which batches it delivers.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Items in the batch this shard delivers at `step` of an epoch, and in the batches all
    /// shards deliver at that step together.
    pub fn step_items(&self, step: usize) -> (usize, usize) {
        let n = self.source.len();
        let items = |batch: usize| {
            n.saturating_sub(batch * self.batch_size)
                .min(self.batch_size)
        };
        let first = step * self.shard.count;
        let all = (first..first + self.shard.count).map(items).sum();
        (items(first + self.shard.rank), all)
    }

    /// Items per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The split it serves.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The device batches are made on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The item order of `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(self.source.len(), self.seed, epoch)
    }

    /// The batches of `cursor.epoch` from `cursor.batch` on, built ahead on a background thread.
    ///
    /// A cursor past the epoch's end is an error; a cursor at the end yields nothing.
    pub fn iter(&self, cursor: DataCursor) -> Result<Batches<B, O>> {
        let num_batches = self.num_batches();
        if cursor.batch > num_batches {
            return Err(TrainerError::InvalidCursor {
                epoch: cursor.epoch,
                batch: cursor.batch,
                num_batches,
            });
        }
        if num_batches == 0 {
            let dealt = if self.shard.count > 1 {
                format!(" for each of {} replicas", self.shard.count)
            } else {
                String::new()
            };
            return Err(TrainerError::Data {
                split: self.split.as_str(),
                message: format!(
                    "{} items make no batch of size {}{}{dealt}",
                    self.source.len(),
                    self.batch_size,
                    if self.drop_last {
                        " with drop_last"
                    } else {
                        ""
                    }
                ),
            });
        }
        let order = self.order(cursor.epoch);
        let queue = Arc::new(Handoff::new(self.prefetch));
        let sender = queue.clone();
        let source = self.source.clone();
        let batch_size = self.batch_size;
        let first = cursor.batch;
        let shard = self.shard;
        let handle = std::thread::Builder::new()
            .name(format!("trainer-{}-loader", self.split))
            .spawn(move || {
                let _close = CloseOnDrop(sender.clone());
                for step in first..num_batches {
                    let batch = step * shard.count + shard.rank;
                    let start = batch * batch_size;
                    let end = (start + batch_size).min(order.len());
                    let built = source.prepare(&order[start..end]);
                    let failed = built.is_err();
                    // The consumer went away: stop quietly.
                    if !sender.push(built) || failed {
                        return;
                    }
                }
            })
            .map_err(|e| TrainerError::LoaderThread {
                split: self.split.as_str(),
                message: format!("cannot spawn: {e}"),
            })?;
        Ok(Batches {
            device: self.device.clone(),
            queue,
            handle: Some(handle),
            remaining: num_batches - first,
            split: self.split.as_str(),
        })
    }
}

/// The batches of one epoch from a cursor on; see [`DataLoader::iter`].
///
/// Items are fetched ahead on a background thread; each batch's tensors are made when `next`
/// hands it out, on the calling thread.
pub struct Batches<B: Backend, O> {
    device: B::Device,
    queue: Arc<Handoff<std::result::Result<PreparedBatch<B, O>, String>>>,
    handle: Option<JoinHandle<()>>,
    remaining: usize,
    split: &'static str,
}

impl<B: Backend, O> Batches<B, O> {
    fn thread_failure(&mut self) -> TrainerError {
        let message = match self.handle.take().map(JoinHandle::join) {
            Some(Err(payload)) => {
                format!("the data set panicked: {}", panic_message(payload.as_ref()))
            }
            _ => "the thread ended without delivering every batch".to_string(),
        };
        TrainerError::LoaderThread {
            split: self.split,
            message,
        }
    }
}

impl<B: Backend, O> Iterator for Batches<B, O> {
    type Item = Result<O>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.queue.pop() {
            Some(Ok(prepared)) => {
                self.remaining -= 1;
                let device = &self.device;
                match std::panic::catch_unwind(AssertUnwindSafe(|| prepared(device))) {
                    Ok(batch) => Some(Ok(batch)),
                    Err(payload) => {
                        self.remaining = 0;
                        Some(Err(TrainerError::Data {
                            split: self.split,
                            message: format!(
                                "the batcher panicked: {}",
                                panic_message(payload.as_ref())
                            ),
                        }))
                    }
                }
            }
            Some(Err(message)) => {
                self.remaining = 0;
                Some(Err(TrainerError::Data {
                    split: self.split,
                    message,
                }))
            }
            None => {
                self.remaining = 0;
                Some(Err(self.thread_failure()))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<B: Backend, O> Drop for Batches<B, O> {
    fn drop(&mut self) {
        // A loader thread waiting for room wakes and stops.
        self.queue.abandon();
    }
}
