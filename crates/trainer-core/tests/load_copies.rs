//! What a checkpoint load allocates, counted by this program's allocator: the file's bytes once
//! (the read), each tensor once more (decoded into its aligned buffer), and on ndarray once more
//! again (burn-ndarray copies a buffer aligned beyond its element type). Two costs this catches
//! coming back: the decoder collecting each tensor into a vector before the aligned copy (one
//! more copy of every tensor), and the optimizer record encoded again into a buffer for its
//! checks (a hash map's entries come out in another order than the file's, so the encoding is
//! matched with the file entry by entry instead). The allocator is process-wide, so this file
//! holds a single test.

#[path = "it/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use common::dropout_net::DropoutNet;
use common::{items, RowBatcher};
use trainer_core::prelude::*;

struct Counting;

/// Bytes allocated since the start (frees not subtracted).
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_load_allocates_the_file_once_and_each_tensor_twice_on_ndarray() {
    // 250,000 hidden units: 1,000,001 parameters, 12 MB of tensors with Adam's two moments.
    let trainer = |salt: f32| {
        let device = Default::default();
        SupervisedTrainer::builder(
            DropoutNet::<common::B>::new(250_000, salt, &device),
            AdamConfig::new().init(),
            TrainerConfig::new(1e-3)
                .with_max_steps(Some(1))
                .with_batch_size(8),
            device,
        )
        .train_data(InMemDataset::new(items(16)), RowBatcher)
        .build()
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let mut trained = trainer(0.0);
    trained.fit().unwrap();
    trained.save_checkpoint(&path).unwrap();
    let file = std::fs::metadata(&path).unwrap().len() as f64;
    assert!(file > 12e6, "{file} bytes");

    let mut fresh = trainer(1.0);
    let before = ALLOCATED.load(Ordering::Relaxed);
    fresh.load_checkpoint(&path).unwrap();
    let allocated = (ALLOCATED.load(Ordering::Relaxed) - before) as f64 / file;
    assert_eq!(fresh.state().global_step, 1, "the load happened");
    // Read 1 + decode 1 + ndarray 1, and a little for the rest; each cost above adds 0.67 to 1.
    assert!(
        (2.9..3.3).contains(&allocated),
        "a load allocated {allocated:.2}x the file"
    );
}
