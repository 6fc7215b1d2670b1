use burn::tensor::backend::AutodiffBackend;

use crate::backend::BackendKind;
use crate::error::GpuError;
use crate::replicas::ReplicaDevice;
use crate::request::{DeviceRequest, DEVICE_ENV};

/// A backend-generic job: [`launch`] runs it monomorphized for the chosen backend.
pub trait Launch {
    /// What the job returns.
    type Output;

    /// Runs the job on `device` of backend `B`. `replica_devices` holds the devices of
    /// data-parallel replicas 1, 2, ... when the program asked for them with
    /// [`launch_replicas`](crate::launch_replicas) (for a trainer builder's `replica_devices`),
    /// and is empty after [`launch`].
    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        replica_devices: Vec<B::Device>,
        selection: &Selection,
    ) -> Self::Output;
}

/// The device a [`Selection`] names.
#[derive(Debug, Clone)]
pub enum SelectedDevice {
    /// The ndarray CPU device.
    NdArray,
    /// The flex CPU device.
    Flex,
    /// A wgpu device.
    #[cfg(feature = "wgpu")]
    Wgpu(burn_wgpu::WgpuDevice),
}

/// The chosen backend and device, and why.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The backend.
    pub backend: BackendKind,
    /// The device, for the backend.
    pub device: SelectedDevice,
    /// A human name of the device (the adapter's name on wgpu).
    pub device_name: String,
    /// Why this one: the request, and what was found.
    pub reason: String,
    /// The devices of data-parallel replicas 1, 2, ... (empty unless
    /// [`launch_replicas`](crate::launch_replicas) chose them).
    pub replicas: Vec<ReplicaDevice>,
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device: {} on {} ({})",
            self.backend, self.device_name, self.reason
        )?;
        for (rank, replica) in self.replicas.iter().enumerate() {
            write!(f, "; replica {}: {}", rank + 1, replica.name)?;
        }
        Ok(())
    }
}

fn ndarray(reason: String) -> Result<Selection, GpuError> {
    if cfg!(feature = "ndarray") {
        Ok(Selection {
            backend: BackendKind::NdArray,
            device: SelectedDevice::NdArray,
            device_name: "cpu".into(),
            reason,
            replicas: Vec::new(),
        })
    } else {
        Err(GpuError::NotCompiled {
            backend: "ndarray",
            feature: "ndarray",
        })
    }
}

fn flex(reason: String) -> Result<Selection, GpuError> {
    if cfg!(feature = "flex") {
        Ok(Selection {
            backend: BackendKind::Flex,
            device: SelectedDevice::Flex,
            device_name: "cpu".into(),
            reason,
            replicas: Vec::new(),
        })
    } else {
        Err(GpuError::NotCompiled {
            backend: "flex",
            feature: "flex",
        })
    }
}

/// The best CPU backend compiled in: flex, faster on every workload measured
/// (`docs/benchmarks.md`), else ndarray.
fn best_cpu(reason: String) -> Result<Selection, GpuError> {
    if cfg!(feature = "flex") {
        flex(reason)
    } else {
        ndarray(reason)
    }
}

/// Chooses the device for `request`, after the [`DEVICE_ENV`] override. Never panics: no GPU
/// is an error for an explicit wgpu request and a fallback to the CPU for `auto`.
pub fn select(request: DeviceRequest) -> Result<Selection, GpuError> {
    let effective = request.with_env_override()?;
    let origin = if effective != request {
        format!("{DEVICE_ENV}={effective}")
    } else {
        format!("requested {effective}")
    };
    resolve(effective, origin)
}

/// Chooses the device for `request` as asked, without the environment's override.
pub(crate) fn resolve(effective: DeviceRequest, origin: String) -> Result<Selection, GpuError> {
    match effective {
        DeviceRequest::Cpu => best_cpu(origin),
        DeviceRequest::Flex => flex(origin),
        DeviceRequest::NdArray => ndarray(origin),
        DeviceRequest::Wgpu(index) => select_wgpu(index, origin),
        DeviceRequest::Auto => {
            if !cfg!(feature = "wgpu") {
                return best_cpu(format!("{origin}; the wgpu feature is not compiled in"));
            }
            match select_wgpu(0, origin.clone()) {
                Ok(selection) => Ok(selection),
                Err(GpuError::NoAdapter { .. }) => {
                    best_cpu(format!("{origin}; no wgpu adapter found"))
                }
                Err(other) => Err(other),
            }
        }
    }
}

#[cfg(feature = "wgpu")]
fn select_wgpu(index: usize, origin: String) -> Result<Selection, GpuError> {
    let adapters = crate::adapters::discovery::adapters();
    let found = adapters.len();
    let (summary, device) = adapters
        .into_iter()
        .nth(index)
        .ok_or(GpuError::NoAdapter { index, found })?;
    Ok(Selection {
        backend: BackendKind::Wgpu,
        device: SelectedDevice::Wgpu(device),
        device_name: summary.to_string(),
        reason: format!("{origin}; adapter {index} of {found}"),
        replicas: Vec::new(),
    })
}

#[cfg(not(feature = "wgpu"))]
fn select_wgpu(_index: usize, _origin: String) -> Result<Selection, GpuError> {
    Err(GpuError::NotCompiled {
        backend: "wgpu",
        feature: "wgpu",
    })
}

/// Chooses a device for `request` (see [`select`]), logs the choice in one line, and runs `job`
/// on it. Returns the choice with the job's output.
pub fn launch<L: Launch>(
    request: DeviceRequest,
    job: L,
) -> Result<(Selection, L::Output), GpuError> {
    let selection = select(request)?;
    log::info!("{selection}");
    let output = run_on(&selection, job);
    Ok((selection, output))
}

/// Like [`launch`], with devices for data-parallel replicas 1, 2, ... chosen by
/// [`select_replicas`](crate::select_replicas) from `replica_requests` and handed to the job.
pub fn launch_replicas<L: Launch>(
    request: DeviceRequest,
    replica_requests: &[DeviceRequest],
    job: L,
) -> Result<(Selection, L::Output), GpuError> {
    let mut selection = select(request)?;
    selection.replicas = crate::replicas::select_replicas(&selection, replica_requests)?;
    log::info!("{selection}");
    let output = run_on(&selection, job);
    Ok((selection, output))
}

fn run_on<L: Launch>(selection: &Selection, job: L) -> L::Output {
    match &selection.device {
        #[cfg(feature = "ndarray")]
        SelectedDevice::NdArray => job.launch::<crate::backend::NdArrayBackend>(
            Default::default(),
            vec![Default::default(); selection.replicas.len()],
            selection,
        ),
        #[cfg(not(feature = "ndarray"))]
        SelectedDevice::NdArray => unreachable!("select() refuses ndarray when it is not compiled"),
        #[cfg(feature = "flex")]
        SelectedDevice::Flex => job.launch::<crate::backend::FlexBackend>(
            Default::default(),
            vec![Default::default(); selection.replicas.len()],
            selection,
        ),
        #[cfg(not(feature = "flex"))]
        SelectedDevice::Flex => unreachable!("select() refuses flex when it is not compiled"),
        #[cfg(feature = "wgpu")]
        SelectedDevice::Wgpu(device) => {
            let replicas = selection
                .replicas
                .iter()
                .map(|replica| match &replica.device {
                    SelectedDevice::Wgpu(device) => device.clone(),
                    _ => unreachable!("select_replicas keeps rank 0's backend"),
                })
                .collect();
            job.launch::<crate::backend::WgpuBackend>(device.clone(), replicas, selection)
        }
    }
}
