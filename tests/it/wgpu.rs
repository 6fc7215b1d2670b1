//! The digits MLP on wgpu matches ndarray. Needs the `wgpu` feature and a wgpu adapter (CI
//! installs Mesa's software Vulkan, `mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

use trainer::prelude::*;

use crate::backends::{assert_runs_agree, ShortRun, SnapshotAcrossThreads};
use crate::common::digits_run_replicated;

const NO_ADAPTER: &str =
    "the wgpu feature is on, so a wgpu adapter is required (apt-get install mesa-vulkan-drivers)";

#[test]
fn wgpu_matches_ndarray_within_tolerance() {
    let (_, cpu) = launch(DeviceRequest::NdArray, ShortRun).unwrap();
    let (selection, wgpu) = launch(DeviceRequest::Wgpu(0), ShortRun).expect(NO_ADAPTER);
    eprintln!("{selection}");
    assert_runs_agree(("ndarray", "wgpu"), &cpu, &wgpu);
}

#[test]
fn a_snapshot_encoded_on_another_thread_keeps_its_values_on_wgpu() {
    let (_, (at_snapshot, after, loaded)) =
        launch(DeviceRequest::Wgpu(0), SnapshotAcrossThreads).expect(NO_ADAPTER);
    assert!(at_snapshot != after, "the second epoch changed nothing");
    assert!(
        loaded == at_snapshot,
        "the checkpoint does not hold the snapshot's values"
    );
}

#[test]
fn two_replicas_on_one_wgpu_device_agree_with_ndarray() {
    // Two replica threads sharing the device (Mesa's lavapipe in CI).
    type Device = burn::tensor::Device<trainer_gpu::WgpuBackend>;
    two_replicas_agree_with_ndarray(vec![Device::DefaultDevice, Device::DefaultDevice]);
}

#[test]
fn two_replicas_on_two_wgpu_devices_agree_with_ndarray() {
    // Two logical devices (`DefaultDevice` and `Cpu`, both lavapipe in CI): burn-wgpu 0.21
    // cannot copy a tensor from one wgpu device to another (cubecl-runtime 0.10's `comm_init` is
    // `unimplemented!()` for wgpu), so replica 1 takes the model through the host and its
    // gradient buffer is averaged on rank 0's device through the host.
    type Device = burn::tensor::Device<trainer_gpu::WgpuBackend>;
    two_replicas_agree_with_ndarray(vec![Device::DefaultDevice, Device::Cpu]);
}

/// Two replicas on `devices` (rank 0's first), checked bit-identical after every step, end
/// within tolerance of ndarray's two replicas.
fn two_replicas_agree_with_ndarray(devices: Vec<burn::tensor::Device<trainer_gpu::WgpuBackend>>) {
    let wgpu = digits_run_replicated::<trainer_gpu::WgpuBackend>(devices, 5, 3, 0.0);
    let cpu = digits_run_replicated::<trainer_gpu::NdArrayBackend>(
        vec![Default::default(); 2],
        5,
        3,
        0.0,
    );
    assert_runs_agree(("ndarray, 2 replicas", "wgpu, 2 replicas"), &cpu, &wgpu);
}
