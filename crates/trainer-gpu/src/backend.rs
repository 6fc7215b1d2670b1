/// The burn backends this crate can run a job on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// burn-ndarray on the CPU (multi-threaded; built without its `simd` feature, which breaks
    /// run-to-run determinism).
    NdArray,
    /// burn-flex on the CPU: gemm's matmuls, SIMD elementwise kernels, rayon threads.
    Flex,
    /// burn-wgpu: Vulkan, Metal or DX12, by platform.
    Wgpu,
}

impl BackendKind {
    /// The backend's name as the CLI and reports spell it.
    pub fn name(&self) -> &'static str {
        match self {
            BackendKind::NdArray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The backends compiled into this program, by cargo feature.
pub fn compiled_backends() -> Vec<BackendKind> {
    let mut kinds = Vec::new();
    if cfg!(feature = "ndarray") {
        kinds.push(BackendKind::NdArray);
    }
    if cfg!(feature = "flex") {
        kinds.push(BackendKind::Flex);
    }
    if cfg!(feature = "wgpu") {
        kinds.push(BackendKind::Wgpu);
    }
    kinds
}

/// The CPU training backend: autodiff over burn-ndarray with `f32`.
#[cfg(feature = "ndarray")]
pub type NdArrayBackend = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;

/// The fast CPU training backend: autodiff over burn-flex with `f32`.
#[cfg(feature = "flex")]
pub type FlexBackend = burn_autodiff::Autodiff<burn_flex::Flex>;

/// The GPU training backend: autodiff over burn-wgpu with `f32`.
#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn_autodiff::Autodiff<burn_wgpu::Wgpu<f32, i32>>;
