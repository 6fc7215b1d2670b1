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

/// Replicas 1.. on logical devices of their own that `launch_replicas` creates on one adapter.
struct ThreeReplicasOnOwnDevices;

impl Launch for ThreeReplicasOnOwnDevices {
    type Output = (Vec<String>, crate::common::RunResult);

    fn launch<B: burn::tensor::backend::AutodiffBackend>(
        self,
        device: B::Device,
        replica_devices: Vec<B::Device>,
        _: &Selection,
    ) -> Self::Output {
        let mut devices = vec![device];
        devices.extend(replica_devices);
        let names = devices.iter().map(|d| format!("{d:?}")).collect();
        (names, digits_run_replicated::<B>(devices, 5, 2, 0.0))
    }
}

#[test]
fn three_replicas_on_logical_devices_of_one_adapter_agree_with_ndarray() {
    let (selection, (devices, wgpu)) = launch_replicas(
        DeviceRequest::Wgpu(0),
        &[DeviceRequest::Wgpu(0), DeviceRequest::Wgpu(0)],
        ThreeReplicasOnOwnDevices,
    )
    .expect(NO_ADAPTER);
    eprintln!("{selection}: {devices:?}");
    assert_eq!(selection.replicas.len(), 2);
    assert!(
        selection
            .replicas
            .iter()
            .all(|r| r.name.contains("logical device")),
        "{selection}"
    );
    // Three distinct devices, each with its own queue: burn keys its servers by device.
    for (i, a) in devices.iter().enumerate() {
        for b in &devices[i + 1..] {
            assert_ne!(a, b, "two replicas share a device: {devices:?}");
        }
    }
    let cpu = digits_run_replicated::<trainer_gpu::NdArrayBackend>(
        vec![Default::default(); 3],
        5,
        2,
        0.0,
    );
    assert_runs_agree(("ndarray, 3 replicas", "wgpu, 3 devices"), &cpu, &wgpu);
}

#[test]
fn the_example_trains_replicas_on_logical_devices() {
    let run = |device_flags: &[&str]| -> serde_json::Value {
        let output = std::process::Command::new(crate::kill_resume::example_binary())
            .args(["--epochs", "1", "--dropout", "0", "--seed", "9"])
            .args(device_flags)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap()
    };
    let wgpu = run(&["--device", "wgpu", "--replica-devices", "wgpu"]);
    assert_eq!(wgpu["backend"], "wgpu", "{wgpu}");
    assert_eq!(wgpu["replicas"], 2, "{wgpu}");
    let names = wgpu["replica_devices"].as_array().unwrap();
    assert_eq!(names.len(), 1, "{wgpu}");
    assert!(
        names[0].as_str().unwrap().contains("logical device"),
        "{wgpu}"
    );
    // One epoch dealt between two replicas: 20 optimizer steps of 2 × 32 items.
    assert_eq!(wgpu["steps"], 20, "{wgpu}");
    // Not compared bit for bit with two replicas sharing one device: cubecl autotunes its
    // kernels per device by timing them, so under load two devices may pick matmuls that sum
    // in other orders (seen in CI-like runs; alone they matched to the bit).
    let cpu = run(&["--device", "ndarray", "--replicas", "2"]);
    let (a, b) = (
        wgpu["test_loss"].as_f64().unwrap(),
        cpu["test_loss"].as_f64().unwrap(),
    );
    assert!(
        (a - b).abs() < crate::backends::LOSS_TOLERANCE,
        "wgpu {a}, ndarray {b}"
    );
}

#[test]
fn replica_devices_that_cannot_work_are_refused_before_training() {
    for (flags, expected) in [
        (
            vec!["--device", "wgpu", "--replica-devices", "ndarray"],
            vec!["replica 1", "same backend"],
        ),
        (
            vec!["--device", "wgpu", "--replica-devices", "wgpu:7"],
            vec!["no wgpu adapter 7"],
        ),
        (
            vec![
                "--device",
                "wgpu",
                "--replicas",
                "3",
                "--replica-devices",
                "wgpu",
            ],
            vec!["--replicas 3", "1 devices"],
        ),
        (
            vec!["--device", "wgpu", "--replica-devices", "cuda"],
            vec!["`cuda`", "--replica-devices"],
        ),
    ] {
        let output = std::process::Command::new(crate::kill_resume::example_binary())
            .args(&flags)
            .args(["--epochs", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flags:?}");
        for part in expected {
            assert!(stderr.contains(part), "{flags:?}: {stderr}");
        }
        assert!(output.stdout.is_empty(), "{flags:?}");
    }
}

#[test]
fn a_job_of_two_replicas_trains_on_a_logical_wgpu_device_like_on_ndarray() {
    let dir = tempfile::tempdir().unwrap();
    let spec = crate::job::replica_spec(dir.path(), 60);
    let model = |device: &str| -> Vec<Vec<u8>> {
        let run = dir.path().join(device);
        let output = crate::job::trainer()
            .args(["run", "--device", device, "--spec"])
            .arg(&spec)
            .arg("--run-dir")
            .arg(&run)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{device}: {}",
            crate::job::stderr(&output)
        );
        crate::job::tensors(&run.join("checkpoints")).0
    };
    // No `--replica-devices`: `trainer_job::launch` asks `launch_replicas` for `wgpu` again,
    // which gives replica 1 a logical device of its own (the example's test above checks the
    // device's name on that path); its gradients reach rank 0's device through the host.
    let worst = crate::job::max_difference(&model("wgpu"), &model("ndarray"));
    assert!(worst < 1e-3, "wgpu and ndarray differ by {worst}");
}
