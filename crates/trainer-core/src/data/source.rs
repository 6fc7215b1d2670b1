use std::marker::PhantomData;
use std::sync::Arc;

use burn::data::{dataloader::batcher::Batcher, dataset::Dataset};
use burn::tensor::backend::Backend;

/// A batch whose items are fetched, waiting to be turned into tensors on the consuming thread.
pub type PreparedBatch<B, O> = Box<dyn FnOnce(&burn::tensor::Device<B>) -> O + Send>;

/// Items by index, batched on a device. It hides the item type, so a loader is typed by its
/// batch alone.
///
/// Work is split in two: [`prepare`](BatchSource::prepare) fetches the items (the costly part:
/// reading, decoding) and runs on the loader's background thread; the [`PreparedBatch`] it
/// returns makes the tensors on the thread that trains. Tensors are made there because burn 0.21's
/// wgpu backend can compute wrong results from tensors another thread created without a sync
/// (seen with fusion on Vulkan: a training run diverged from its ndarray twin).
pub trait BatchSource<B: Backend, O>: Send + Sync {
    /// Number of items.
    fn len(&self) -> usize;

    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fetches the items at `indices`; an error names an index the data set could not deliver.
    fn prepare(&self, indices: &[usize]) -> Result<PreparedBatch<B, O>, String>;
}

/// A burn [`Dataset`] with a burn [`Batcher`]: the usual [`BatchSource`].
pub struct DatasetBatches<D, T, I> {
    dataset: D,
    batcher: Arc<T>,
    item: PhantomData<fn() -> I>,
}

impl<D, T, I> DatasetBatches<D, T, I> {
    /// Pairs a data set with a batcher.
    pub fn new(dataset: D, batcher: T) -> Self {
        Self {
            dataset,
            batcher: Arc::new(batcher),
            item: PhantomData,
        }
    }
}

impl<B, D, T, I, O> BatchSource<B, O> for DatasetBatches<D, T, I>
where
    B: Backend,
    D: Dataset<I>,
    T: Batcher<B, I, O> + 'static,
    I: Send + 'static,
{
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn prepare(&self, indices: &[usize]) -> Result<PreparedBatch<B, O>, String> {
        let mut items = Vec::with_capacity(indices.len());
        for &index in indices {
            match self.dataset.get(index) {
                Some(item) => items.push(item),
                None => {
                    return Err(format!(
                        "the data set has no item {index} although its len() is {}",
                        self.dataset.len()
                    ))
                }
            }
        }
        let batcher = self.batcher.clone();
        Ok(Box::new(move |device: &B::Device| {
            batcher.batch(items, device)
        }))
    }
}
