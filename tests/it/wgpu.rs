//! The digits MLP on wgpu matches ndarray. Needs the `wgpu` feature and a wgpu adapter (CI
//! installs Mesa's software Vulkan, `mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

use crate::common;

use burn::tensor::backend::AutodiffBackend;
use common::{digits_run, RunResult};
use trainer::prelude::*;

/// A short run without dropout (dropout masks come from each backend's own RNG, so they differ
/// between backends).
struct ShortRun;

impl Launch for ShortRun {
    type Output = RunResult;

    fn launch<B: AutodiffBackend>(self, device: B::Device, _: &Selection) -> RunResult {
        digits_run::<B>(device, 5, 3, 0.0)
    }
}

/// Absolute tolerance on mean losses between backends: f32 kernels sum in different orders, and
/// three epochs of Adam let those last-bit differences grow to about 1e-7 on Mesa's lavapipe.
const LOSS_TOLERANCE: f64 = 1e-3;

#[test]
fn wgpu_matches_ndarray_within_tolerance() {
    let (cpu, wgpu) = {
        let (_, cpu) = launch(DeviceRequest::Cpu, ShortRun).unwrap();
        let (selection, wgpu) = launch(DeviceRequest::Wgpu(0), ShortRun)
            .expect("the wgpu feature is on, so a wgpu adapter is required (apt-get install mesa-vulkan-drivers)");
        eprintln!("{selection}");
        (cpu, wgpu)
    };
    eprintln!("ndarray {:?} {:?}", cpu.train_losses, cpu.valid_losses);
    eprintln!("wgpu    {:?} {:?}", wgpu.train_losses, wgpu.valid_losses);
    for (split, a, b) in [
        ("train", &cpu.train_losses, &wgpu.train_losses),
        ("valid", &cpu.valid_losses, &wgpu.valid_losses),
    ] {
        for (epoch, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            assert!(
                (x - y).abs() < LOSS_TOLERANCE,
                "{split} loss of epoch {}: ndarray {x} vs wgpu {y}",
                epoch + 1
            );
        }
    }
    assert!(cpu.train_losses[2] < cpu.train_losses[0]);
    assert!(
        (cpu.test_accuracy - wgpu.test_accuracy).abs() <= 2.0 / 270.0,
        "test accuracy ndarray {} vs wgpu {}",
        cpu.test_accuracy,
        wgpu.test_accuracy
    );
}

/// Stops the first `fit` after its first epoch.
struct StopAfterFirstEpoch(bool);

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
struct SnapshotAcrossThreads;

impl Launch for SnapshotAcrossThreads {
    type Output = (Vec<u8>, Vec<u8>, Vec<u8>);

    fn launch<B: AutodiffBackend>(self, device: B::Device, _: &Selection) -> Self::Output {
        use crate::support::digits::{self, DigitsBatcher};
        use crate::support::mlp::MlpConfig;
        use burn::data::dataset::InMemDataset;
        let items = digits::load(digits::bundled_path()).unwrap();
        let data = digits::split(items, 0, 0.15, 0.15);
        let make = |seed: u64, stop: bool| {
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
        let path =
            std::env::temp_dir().join(format!("trainer-wgpu-snapshot-{}.ckpt", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let mut fresh = make(9, false);
        fresh.load_checkpoint(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (at_snapshot, after, fresh.model().parameter_bytes())
    }
}

#[test]
fn a_snapshot_encoded_on_another_thread_keeps_its_values_on_wgpu() {
    let (_, (at_snapshot, after, loaded)) = launch(DeviceRequest::Wgpu(0), SnapshotAcrossThreads)
        .expect("the wgpu feature is on, so a wgpu adapter is required (apt-get install mesa-vulkan-drivers)");
    assert!(at_snapshot != after, "the second epoch changed nothing");
    assert!(
        loaded == at_snapshot,
        "the checkpoint does not hold the snapshot's values"
    );
}
