//! What a checkpoint save and load allocate, counted by this program's allocator, on ndarray
//! (and flex when compiled): a save holds the file's bytes once beside what was live (each
//! tensor's host copy, written as it streams into the file); a load allocates the file's bytes
//! once: each large tensor is read from the file straight into its own buffer, which both
//! backends adopt as it is, and only the small rest (the skeleton) is read apart.
//!
//! Each bound catches one cost coming back: a shared flex tensor copied twice for the host copy
//! (save peak 1.33x and more), the tensors read into one buffer of the whole file and copied out
//! of it (+1.0x), a buffer aligned otherwise than its element so that burn-ndarray copies it
//! again (+1.0x), the record checks failing to match the buffers the load read and encoding the
//! records again into a buffer to scan (+1.0x and more). The allocator is process-wide, so this
//! file holds a single test.

#[path = "../benches/common/counting_alloc.rs"]
mod counting_alloc;
#[path = "../examples/support/mod.rs"]
mod support;

use std::alloc::System;

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use counting_alloc::Counting;
use support::digits::{self, DigitsBatcher};
use support::mlp::MlpConfig;
use trainer::prelude::*;

#[global_allocator]
static ALLOCATOR: Counting<System> = Counting::new(System);

/// The save's peak beyond what was live, and what the load allocated, as multiples of the file.
fn save_and_load<B: AutodiffBackend>(dir: &std::path::Path) -> (f64, f64) {
    let device = B::Device::default();
    let items = digits::load(digits::bundled_path()).unwrap();
    // 64-1024-512-10: 597,514 parameters, 7.2 MB of tensors with Adam's two moments.
    let trainer = || {
        let model =
            MlpConfig::new(digits::PIXELS, vec![1024, 512], digits::CLASSES).init::<B>(1, &device);
        let config = TrainerConfig::new(1e-3)
            .with_max_steps(Some(1))
            .with_batch_size(32);
        SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device.clone())
            .train_data(InMemDataset::new(items[..32].to_vec()), DigitsBatcher)
            .build()
            .unwrap()
    };
    let mut trained = trainer();
    trained.fit().unwrap();
    let path = dir.join("run.ckpt");

    let live = ALLOCATOR.reset_peak();
    trained.save_checkpoint(&path).unwrap();
    let peak = ALLOCATOR.peak() - live;
    let file = std::fs::metadata(&path).unwrap().len() as f64;
    assert!(file > 7e6, "{file} bytes");

    let mut fresh = trainer();
    let before = ALLOCATOR.allocated();
    fresh.load_checkpoint(&path).unwrap();
    let allocated = ALLOCATOR.allocated() - before;
    assert_eq!(fresh.state().global_step, 1, "the load happened");
    (peak as f64 / file, allocated as f64 / file)
}

#[test]
fn a_save_holds_the_file_once_and_a_load_reads_each_tensor_once() {
    let dir = tempfile::tempdir().unwrap();
    let (peak, load) = save_and_load::<trainer_gpu::NdArrayBackend>(dir.path());
    assert!(peak < 1.1, "an ndarray save held {peak:.2}x the file");
    // The read and the decoding: ndarray adopts the decoded `Vec<f32>`.
    assert!(
        (0.95..1.1).contains(&load),
        "an ndarray load allocated {load:.2}x the file"
    );
    #[cfg(feature = "flex")]
    {
        let (peak, load) = save_and_load::<trainer_gpu::FlexBackend>(dir.path());
        assert!(peak < 1.1, "a flex save held {peak:.2}x the file");
        // The read and the decoding: flex keeps the decoded buffers.
        assert!(
            (0.95..1.1).contains(&load),
            "a flex load allocated {load:.2}x the file"
        );
    }
}
