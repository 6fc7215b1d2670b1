//! The digits MLP on wgpu matches ndarray. Needs the `wgpu` feature and a wgpu adapter (CI
//! installs Mesa's software Vulkan, `mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use trainer::digits::{self, DigitsBatcher};
use trainer::mlp::MlpConfig;
use trainer::prelude::*;

/// Per-epoch training losses and the test accuracy of a short run without dropout (dropout masks
/// come from each backend's own RNG, so they differ between backends).
struct ShortRun;

impl Launch for ShortRun {
    type Output = (Vec<f64>, Vec<f64>, f64);

    fn launch<B: AutodiffBackend>(self, device: B::Device, _: &Selection) -> Self::Output {
        let items = digits::load(digits::bundled_path()).unwrap();
        let data = digits::split(items, 0, 0.15, 0.15);
        let model = MlpConfig::new(digits::PIXELS, vec![64], digits::CLASSES).init::<B>(5, &device);
        let config = TrainerConfig::new(3e-3).with_epochs(Some(3)).with_batch_size(32).with_seed(5);
        let mut trainer = SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
            .train_data(InMemDataset::new(data.train), DigitsBatcher)
            .valid_data(InMemDataset::new(data.valid), DigitsBatcher)
            .test_data(InMemDataset::new(data.test), DigitsBatcher)
            .build()
            .unwrap();
        trainer.fit().unwrap();
        let history = &trainer.state().history;
        let train = history.iter().map(|e| e.train["loss"]).collect();
        let valid = history.iter().map(|e| e.valid.as_ref().unwrap()["loss"]).collect();
        (train, valid, trainer.test().unwrap()["accuracy"])
    }
}

/// Absolute tolerance on mean losses between backends: f32 kernels sum in different orders, and
/// three epochs of Adam let those last-bit differences grow to about 1e-5 here.
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
    eprintln!("ndarray {cpu:?}\nwgpu    {wgpu:?}");
    for (split, a, b) in [("train", &cpu.0, &wgpu.0), ("valid", &cpu.1, &wgpu.1)] {
        for (epoch, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            assert!((x - y).abs() < LOSS_TOLERANCE, "{split} loss of epoch {}: ndarray {x} vs wgpu {y}", epoch + 1);
        }
    }
    assert!(cpu.0[2] < cpu.0[0]);
    assert!((cpu.2 - wgpu.2).abs() <= 2.0 / 270.0, "test accuracy ndarray {} vs wgpu {}", cpu.2, wgpu.2);
}
