//! Devices for data-parallel replicas 1, 2, ...: one each, all of rank 0's backend.

use crate::error::GpuError;
use crate::launch::{resolve, SelectedDevice, Selection};
use crate::request::DeviceRequest;

/// The device of one data-parallel replica.
#[derive(Debug, Clone)]
pub struct ReplicaDevice {
    /// The device, of rank 0's backend.
    pub device: SelectedDevice,
    /// A human name: the adapter, and whether the device is a logical one.
    pub name: String,
}

/// Chooses the devices of replicas 1, 2, ... for `requests`, one each, all of `main`'s backend
/// (a mix fails: burn moves tensors within one backend).
///
/// On the CPU every replica runs on the one CPU device, threads sharing the cores. On wgpu a
/// replica gets its adapter's device the first time the adapter is named (by rank 0 or by an
/// earlier replica) and a new *logical* device on it after that: its own wgpu device, queue and
/// memory, as on a second GPU. So `wgpu:0,wgpu:1` spreads over two GPUs, and on a machine with
/// one adapter (Mesa's software Vulkan, say) `wgpu` for every replica gives each its own device.
/// `TRAINER_DEVICE` does not apply to replicas: it chooses rank 0's device only.
pub fn select_replicas(
    main: &Selection,
    requests: &[DeviceRequest],
) -> Result<Vec<ReplicaDevice>, GpuError> {
    let mut taken: Vec<SelectedDevice> = vec![main.device.clone()];
    let mut replicas = Vec::with_capacity(requests.len());
    for (k, request) in requests.iter().enumerate() {
        let rank = k + 1;
        let chosen = resolve(*request, format!("replica {rank}: requested {request}"))?;
        if chosen.backend != main.backend {
            return Err(GpuError::MixedBackends {
                rank,
                requested: request.to_string(),
                backend: chosen.backend.name(),
                main: main.backend.name(),
            });
        }
        let replica = match chosen.device {
            #[cfg(feature = "wgpu")]
            SelectedDevice::Wgpu(device) if taken.iter().any(|t| same_wgpu(t, &device)) => {
                let index = match request {
                    DeviceRequest::Wgpu(index) => *index,
                    _ => 0,
                };
                ReplicaDevice {
                    device: SelectedDevice::Wgpu(crate::adapters::discovery::logical_device(
                        index,
                    )?),
                    name: format!("{} (a logical device of its own)", chosen.device_name),
                }
            }
            device => ReplicaDevice {
                device,
                name: chosen.device_name,
            },
        };
        taken.push(replica.device.clone());
        replicas.push(replica);
    }
    Ok(replicas)
}

#[cfg(feature = "wgpu")]
fn same_wgpu(taken: &SelectedDevice, device: &burn_wgpu::WgpuDevice) -> bool {
    matches!(taken, SelectedDevice::Wgpu(t) if t == device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::select;

    #[cfg(feature = "ndarray")]
    #[test]
    fn cpu_replicas_share_the_cpu_device() {
        let main = select(DeviceRequest::NdArray).unwrap();
        let replicas = select_replicas(&main, &[DeviceRequest::NdArray; 3]).unwrap();
        assert_eq!(replicas.len(), 3);
        assert!(replicas
            .iter()
            .all(|r| matches!(r.device, SelectedDevice::NdArray)));
    }

    #[cfg(all(feature = "ndarray", feature = "flex"))]
    #[test]
    fn a_mix_of_backends_is_refused_naming_the_replica() {
        let main = select(DeviceRequest::NdArray).unwrap();
        let err = select_replicas(&main, &[DeviceRequest::NdArray, DeviceRequest::Flex])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("replica 2") && err.contains("flex") && err.contains("ndarray"),
            "{err}"
        );
    }
}
