//! Runs that every backend must pass the same way, as `Launch` jobs: the wgpu and flex tests
//! launch them on their backend and compare with ndarray or with themselves.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use trainer::prelude::*;

use crate::common::{digits_run, RunResult};
use crate::support::digits::{self, DigitsBatcher};
use crate::support::mlp::MlpConfig;

/// A short run without dropout (dropout masks come from each backend's own RNG, so they differ
/// between backends).
pub struct ShortRun;

impl Launch for ShortRun {
    type Output = RunResult;

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        _: Vec<B::Device>,
        _: &Selection,
    ) -> RunResult {
        digits_run::<B>(device, 5, 3, 0.0)
    }
}

/// Absolute tolerance on mean losses between backends: f32 kernels sum in different orders, and
/// three epochs of Adam let those last-bit differences grow to about 1e-7 on Mesa's lavapipe.
pub const LOSS_TOLERANCE: f64 = 1e-3;

/// Asserts that two short runs on different backends agree within [`LOSS_TOLERANCE`] per epoch
/// and within two test items of accuracy.
pub fn assert_runs_agree(names: (&str, &str), a: &RunResult, b: &RunResult) {
    eprintln!("{} {:?} {:?}", names.0, a.train_losses, a.valid_losses);
    eprintln!("{} {:?} {:?}", names.1, b.train_losses, b.valid_losses);
    for (split, x, y) in [
        ("train", &a.train_losses, &b.train_losses),
        ("valid", &a.valid_losses, &b.valid_losses),
    ] {
        assert_eq!(x.len(), y.len());
        for (epoch, (x, y)) in x.iter().zip(y.iter()).enumerate() {
            assert!(
                (x - y).abs() < LOSS_TOLERANCE,
                "{split} loss of epoch {}: {} {x} vs {} {y}",
                epoch + 1,
                names.0,
                names.1
            );
        }
    }
    assert!(
        a.train_losses.last() < a.train_losses.first(),
        "{:?}",
        a.train_losses
    );
    assert!(
        (a.test_accuracy - b.test_accuracy).abs() <= 2.0 / 270.0,
        "test accuracy {} {} vs {} {}",
        names.0,
        a.test_accuracy,
        names.1,
        b.test_accuracy
    );
}

/// The same seeded run twice in one process, with dropout: the two must be identical.
pub struct SameRunTwice;

impl Launch for SameRunTwice {
    type Output = (RunResult, RunResult);

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        _: Vec<B::Device>,
        _: &Selection,
    ) -> Self::Output {
        (
            digits_run::<B>(device.clone(), 11, 2, 0.1),
            digits_run::<B>(device, 11, 2, 0.1),
        )
    }
}

/// Stops the first `fit` after its first epoch.
pub struct StopAfterFirstEpoch(bool);

impl Callback for StopAfterFirstEpoch {
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if !self.0 {
            self.0 = true;
            ctx.control.stop("first epoch done");
        }
        Ok(())
    }
}

/// A snapshot taken on the training thread and encoded on another one after more training
/// holds the values of its moment, on wgpu too (the tensors are read back from the writer's
/// thread), and loads into a fresh trainer.
pub struct SnapshotAcrossThreads;

impl Launch for SnapshotAcrossThreads {
    type Output = (Vec<u8>, Vec<u8>, Vec<u8>);

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        _: Vec<B::Device>,
        _: &Selection,
    ) -> Self::Output {
        let items = digits::load(digits::bundled_path()).unwrap();
        let data = digits::split(items, 0, 0.15, 0.15);
        let make = |seed: u64, stop: bool| {
            use burn::data::dataset::InMemDataset;
            let model =
                MlpConfig::new(digits::PIXELS, vec![32], digits::CLASSES).init::<B>(seed, &device);
            let config = TrainerConfig::new(3e-3)
                .with_epochs(Some(2))
                .with_batch_size(64)
                .with_seed(2);
            let mut builder = SupervisedTrainer::builder(
                model,
                burn::optim::AdamConfig::new().init(),
                config,
                device.clone(),
            )
            .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher);
            if stop {
                builder = builder.callback(StopAfterFirstEpoch(false));
            }
            builder.build().unwrap()
        };
        let mut trainer = make(2, true);
        trainer.fit().unwrap();
        let at_snapshot = trainer.model().parameter_bytes();
        let snapshot = trainer.snapshot().unwrap();
        trainer.fit().unwrap();
        let after = trainer.model().parameter_bytes();
        let bytes = std::thread::scope(|s| s.spawn(|| snapshot.encode().unwrap()).join().unwrap());
        let path = std::env::temp_dir().join(format!(
            "trainer-backend-snapshot-{}.ckpt",
            std::process::id()
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut fresh = make(9, false);
        fresh.load_checkpoint(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (at_snapshot, after, fresh.model().parameter_bytes())
    }
}

/// Two epochs straight, and the same run stopped after one epoch, saved, loaded into a fresh
/// trainer (other initial weights) and finished: the parameters of both, with dropout on.
pub struct ResumeExactly;

impl Launch for ResumeExactly {
    type Output = (Vec<u8>, Vec<u8>);

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        _: Vec<B::Device>,
        _: &Selection,
    ) -> Self::Output {
        use burn::data::dataset::InMemDataset;
        let items = digits::load(digits::bundled_path()).unwrap();
        let data = digits::split(items, 0, 0.15, 0.15);
        let make = |seed: u64, stop: bool| {
            let model = MlpConfig::new(digits::PIXELS, vec![48, 32], digits::CLASSES)
                .with_dropout(0.2)
                .init::<B>(seed, &device);
            let config = TrainerConfig::new(3e-3)
                .with_epochs(Some(2))
                .with_batch_size(32)
                .with_seed(4);
            let mut builder = SupervisedTrainer::builder(
                model,
                burn::optim::AdamConfig::new().init(),
                config,
                device.clone(),
            )
            .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher);
            if stop {
                builder = builder.callback(StopAfterFirstEpoch(false));
            }
            builder.build().unwrap()
        };
        let mut straight = make(3, false);
        straight.fit().unwrap();
        let mut first = make(3, true);
        first.fit().unwrap();
        assert_eq!(
            first.state().epoch,
            1,
            "the first fit stops after one epoch"
        );
        let path: PathBuf = std::env::temp_dir().join(format!(
            "trainer-backend-resume-{}.ckpt",
            std::process::id()
        ));
        first.save_checkpoint(&path).unwrap();
        let mut resumed = make(8, false);
        resumed.load_checkpoint(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        resumed.fit().unwrap();
        assert_eq!(resumed.state().global_step, straight.state().global_step);
        (
            straight.model().parameter_bytes(),
            resumed.model().parameter_bytes(),
        )
    }
}
