//! The digits MLP on wgpu matches ndarray. Needs the `wgpu` feature and a wgpu adapter (CI
//! installs Mesa's software Vulkan, `mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

mod common;

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
            assert!((x - y).abs() < LOSS_TOLERANCE, "{split} loss of epoch {}: ndarray {x} vs wgpu {y}", epoch + 1);
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
