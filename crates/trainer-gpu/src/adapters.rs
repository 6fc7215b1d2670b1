/// What a wgpu adapter says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name (e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Discrete, integrated, virtual, CPU (software) or other.
    pub device_type: String,
    /// The graphics API (Vulkan, Metal, Dx12).
    pub api: String,
    /// The driver and its version.
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.device_type, self.api)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        f.write_str(")")
    }
}

/// The adapters wgpu finds for the graphics API burn-wgpu uses on this platform, in the order
/// burn's device indices count them; empty when the `wgpu` feature is off or nothing is found.
/// Never panics.
pub fn wgpu_adapters() -> Vec<AdapterSummary> {
    #[cfg(feature = "wgpu")]
    {
        discovery::adapters()
            .into_iter()
            .map(|(info, _)| info)
            .collect()
    }
    #[cfg(not(feature = "wgpu"))]
    {
        Vec::new()
    }
}

#[cfg(feature = "wgpu")]
pub(crate) mod discovery {
    use burn_wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use burn_wgpu::WgpuDevice;

    use super::AdapterSummary;

    /// Each adapter with the burn device that addresses it.
    pub(crate) fn adapters() -> Vec<(AdapterSummary, WgpuDevice)> {
        // A broken driver stack must not take the program down: treat a panic as "no adapter".
        std::panic::catch_unwind(enumerate).unwrap_or_default()
    }

    fn enumerate() -> Vec<(AdapterSummary, WgpuDevice)> {
        let backend = AutoGraphicsApi::backend();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(backend.into()));
        let mut per_type = [0usize; 3];
        adapters
            .into_iter()
            .map(|adapter| {
                let info = adapter.get_info();
                // burn numbers devices within their type: DiscreteGpu(0), IntegratedGpu(0), ...
                let device = match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => {
                        per_type[0] += 1;
                        WgpuDevice::DiscreteGpu(per_type[0] - 1)
                    }
                    wgpu::DeviceType::IntegratedGpu => {
                        per_type[1] += 1;
                        WgpuDevice::IntegratedGpu(per_type[1] - 1)
                    }
                    wgpu::DeviceType::VirtualGpu => {
                        per_type[2] += 1;
                        WgpuDevice::VirtualGpu(per_type[2] - 1)
                    }
                    wgpu::DeviceType::Cpu => WgpuDevice::Cpu,
                    wgpu::DeviceType::Other => WgpuDevice::DefaultDevice,
                };
                let summary = AdapterSummary {
                    name: info.name,
                    device_type: format!("{:?}", info.device_type),
                    api: format!("{:?}", info.backend),
                    driver: format!("{} {}", info.driver, info.driver_info)
                        .trim()
                        .to_string(),
                };
                (summary, device)
            })
            .collect()
    }
}
