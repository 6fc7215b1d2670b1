use std::collections::BTreeSet;

use burn::data::{dataloader::batcher::Batcher, dataset::InMemDataset};
use burn::tensor::backend::Backend;
use trainer_core::data::{epoch_order, DataCursor, DataLoader};
use trainer_core::TrainerError;

type B = burn_ndarray::NdArray<f32>;

/// Batches are the item values themselves, so tests see exactly what was delivered.
#[derive(Clone)]
struct Ids;

impl<B: Backend> Batcher<B, usize, Vec<usize>> for Ids {
    fn batch(&self, items: Vec<usize>, _device: &B::Device) -> Vec<usize> {
        items
    }
}

fn loader(n: usize, batch: usize, seed: Option<u64>, drop_last: bool) -> DataLoader<B, Vec<usize>> {
    let mut builder = DataLoader::<B, Vec<usize>>::builder(
        InMemDataset::new((0..n).collect()),
        Ids,
        Default::default(),
    )
    .batch_size(batch)
    .drop_last(drop_last)
    .prefetch(2);
    if let Some(seed) = seed {
        builder = builder.shuffle(seed);
    }
    builder.build()
}

fn epoch(loader: &DataLoader<B, Vec<usize>>, cursor: DataCursor) -> Vec<Vec<usize>> {
    loader
        .iter(cursor)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn same_seed_same_order() {
    let a = loader(100, 7, Some(3), false);
    let b = loader(100, 7, Some(3), false);
    assert_eq!(
        epoch(&a, DataCursor::epoch_start(0)),
        epoch(&b, DataCursor::epoch_start(0))
    );
    assert_eq!(
        epoch(&a, DataCursor::epoch_start(5)),
        epoch(&b, DataCursor::epoch_start(5))
    );
    // Another seed, another order.
    let c = loader(100, 7, Some(4), false);
    assert_ne!(
        epoch(&a, DataCursor::epoch_start(0)),
        epoch(&c, DataCursor::epoch_start(0))
    );
}

#[test]
fn another_epoch_another_order() {
    let l = loader(100, 10, Some(1), false);
    let orders: BTreeSet<Vec<usize>> = (0..5)
        .map(|e| epoch(&l, DataCursor::epoch_start(e)).concat())
        .collect();
    assert_eq!(orders.len(), 5);
    // And the order is not the identity.
    assert_ne!(l.order(0), (0..100).collect::<Vec<_>>());
}

#[test]
fn every_item_exactly_once_per_epoch() {
    for (n, batch) in [(100, 7), (64, 8), (1, 5), (13, 13)] {
        let l = loader(n, batch, Some(9), false);
        for e in 0..3 {
            let batches = epoch(&l, DataCursor::epoch_start(e));
            assert_eq!(batches.len(), n.div_ceil(batch));
            assert!(batches[..batches.len() - 1]
                .iter()
                .all(|b| b.len() == batch));
            let mut all = batches.concat();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..n).collect::<Vec<_>>(),
                "n={n} batch={batch} epoch={e}"
            );
        }
    }
}

#[test]
fn drop_last_drops_only_the_short_batch() {
    let l = loader(10, 4, Some(2), true);
    assert_eq!(l.num_batches(), 2);
    let batches = epoch(&l, DataCursor::epoch_start(0));
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4]);
    assert_eq!(batches.concat(), l.order(0)[..8].to_vec());
}

#[test]
fn a_cursor_restored_mid_epoch_yields_exactly_the_remaining_batches() {
    let l = loader(50, 6, Some(11), false);
    let full = epoch(&l, DataCursor::epoch_start(2));
    for k in 0..=full.len() {
        let rest = epoch(&l, DataCursor { epoch: 2, batch: k });
        assert_eq!(rest, full[k..].to_vec(), "cursor at batch {k}");
    }
    // A fresh loader (as after a restart) agrees too.
    let again = loader(50, 6, Some(11), false);
    assert_eq!(
        epoch(&again, DataCursor { epoch: 2, batch: 4 }),
        full[4..].to_vec()
    );
}

#[test]
fn a_cursor_past_the_end_is_an_error() {
    let l = loader(10, 3, None, false);
    match l.iter(DataCursor { epoch: 0, batch: 5 }) {
        Err(TrainerError::InvalidCursor {
            batch: 5,
            num_batches: 4,
            ..
        }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a cursor past the end must be refused"),
    }
}

#[test]
fn unshuffled_order_is_the_identity() {
    assert_eq!(epoch_order(5, None, 3), vec![0, 1, 2, 3, 4]);
    let l = loader(5, 2, None, false);
    assert_eq!(
        epoch(&l, DataCursor::epoch_start(1)),
        vec![vec![0, 1], vec![2, 3], vec![4]]
    );
}

#[test]
fn the_background_thread_stays_a_bounded_number_ahead() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts the items fetched, which the background thread does.
    struct Counting(Arc<AtomicUsize>);
    impl burn::data::dataset::Dataset<usize> for Counting {
        fn get(&self, index: usize) -> Option<usize> {
            self.0.fetch_add(1, Ordering::SeqCst);
            (index < 100).then_some(index)
        }
        fn len(&self) -> usize {
            100
        }
    }
    let fetched = Arc::new(AtomicUsize::new(0));
    let l =
        DataLoader::<B, Vec<usize>>::builder(Counting(fetched.clone()), Ids, Default::default())
            .batch_size(1)
            .prefetch(3)
            .build();
    let mut batches = l.iter(DataCursor::epoch_start(0)).unwrap();
    batches.next().unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // One taken, 3 queued, and at most one more fetched and waiting to be queued.
    let ahead = fetched.load(Ordering::SeqCst);
    assert!((4..=5).contains(&ahead), "fetched {ahead} batches");
}

#[test]
fn a_data_set_short_of_its_len_is_an_error_naming_the_index() {
    struct Short;
    impl burn::data::dataset::Dataset<usize> for Short {
        fn get(&self, index: usize) -> Option<usize> {
            (index != 7).then_some(index)
        }
        fn len(&self) -> usize {
            10
        }
    }
    let l = DataLoader::<B, Vec<usize>>::builder(Short, Ids, Default::default())
        .batch_size(4)
        .build();
    let results: Vec<_> = l.iter(DataCursor::epoch_start(0)).unwrap().collect();
    assert_eq!(results.len(), 2, "the epoch ends at the failing batch");
    let err = results
        .into_iter()
        .find_map(Result::err)
        .expect("an error")
        .to_string();
    assert!(
        err.contains("no item 7") && err.contains("train data"),
        "{err}"
    );
}

#[test]
fn a_panicking_batcher_is_an_error_not_a_hang() {
    #[derive(Clone)]
    struct Panics;
    impl<B: Backend> Batcher<B, usize, Vec<usize>> for Panics {
        fn batch(&self, items: Vec<usize>, _: &B::Device) -> Vec<usize> {
            if items.contains(&3) {
                panic!("bad item 3");
            }
            items
        }
    }
    let l = DataLoader::<B, Vec<usize>>::builder(
        InMemDataset::new((0..10).collect()),
        Panics,
        Default::default(),
    )
    .batch_size(2)
    .build();
    let results: Vec<_> = l.iter(DataCursor::epoch_start(0)).unwrap().collect();
    let err = results
        .into_iter()
        .find_map(Result::err)
        .expect("an error")
        .to_string();
    assert!(err.contains("bad item 3"), "{err}");
}
