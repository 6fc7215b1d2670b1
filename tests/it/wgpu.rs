//! The digits MLP on wgpu matches ndarray. Needs the `wgpu` feature and a wgpu adapter (CI
//! installs Mesa's software Vulkan, `mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

use trainer::prelude::*;

use crate::backends::{assert_runs_agree, ShortRun, SnapshotAcrossThreads};

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
