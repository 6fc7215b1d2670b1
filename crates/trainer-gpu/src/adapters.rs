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
    use burn_wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup};

    use super::AdapterSummary;
    use crate::error::GpuError;

    /// Each adapter with the burn device that addresses it.
    pub(crate) fn adapters() -> Vec<(AdapterSummary, WgpuDevice)> {
        // A broken driver stack must not take the program down: treat a panic as "no adapter".
        std::panic::catch_unwind(enumerate).unwrap_or_default()
    }

    fn instance() -> wgpu::Instance {
        wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: AutoGraphicsApi::backend().into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        })
    }

    /// A new wgpu device on adapter `index` (in [`adapters`]' order), registered with burn as
    /// a device of its own (`WgpuDevice::Existing`): own queue, own memory.
    pub(crate) fn logical_device(index: usize) -> Result<WgpuDevice, GpuError> {
        let fail = |reason: String| GpuError::LogicalDevice { index, reason };
        if cfg!(any(feature = "vulkan", feature = "metal")) {
            // burn-wgpu's SPIR-V and MSL compilers need devices made with their own extensions,
            // which only burn-wgpu's private setup requests.
            return Err(fail(
                "this build compiles kernels with the vulkan or metal feature's compiler, which \
                 needs devices burn-wgpu creates itself; build without that feature, or give \
                 each replica an adapter of its own"
                    .into(),
            ));
        }
        let backend = AutoGraphicsApi::backend();
        let instance = instance();
        let found = pollster::block_on(instance.enumerate_adapters(backend.into()));
        let count = found.len();
        let adapter = found
            .into_iter()
            .nth(index)
            .ok_or_else(|| fail(format!("{count} adapters found")))?;
        // The descriptor burn-wgpu's WGSL setup uses, so that its kernels find what they need.
        let (device, queue) = pollster::block_on(
            adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("trainer replica"),
                required_features: adapter
                    .features()
                    .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                required_limits: adapter.limits(),
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                trace: wgpu::Trace::Off,
                // SAFETY: what burn-wgpu's own setup enables; our kernels are burn's.
                experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
            }),
        )
        .map_err(|e| fail(e.to_string()))?;
        let setup = WgpuSetup {
            instance,
            adapter,
            device,
            queue,
            backend,
        };
        Ok(burn_wgpu::init_device(setup, RuntimeOptions::default()))
    }

    fn enumerate() -> Vec<(AdapterSummary, WgpuDevice)> {
        let backend = AutoGraphicsApi::backend();
        let instance = instance();
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
