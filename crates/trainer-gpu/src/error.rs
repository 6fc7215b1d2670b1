use thiserror::Error;

/// What can go wrong when choosing a device.
#[derive(Debug, Error)]
pub enum GpuError {
    /// A device name (flag or environment variable) is not one of the known ones.
    #[error("unknown device `{value}` in {origin}: use `cpu` (the best CPU backend), `flex`, `ndarray`, `wgpu`, `wgpu:N` (the N-th adapter) or `auto`")]
    UnknownDevice {
        /// The rejected text.
        value: String,
        /// Where it came from (a flag, the environment variable).
        origin: String,
    },
    /// The requested backend is not compiled into this program.
    #[error("the {backend} backend is not compiled in: rebuild with `--features {feature}`")]
    NotCompiled {
        /// The backend's name.
        backend: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// wgpu was requested but no adapter (or not the requested one) exists.
    #[error("no wgpu adapter {index} ({found} found); on Linux without a GPU, install Mesa's software Vulkan (`apt-get install mesa-vulkan-drivers`) or use `--device cpu`")]
    NoAdapter {
        /// The adapter index asked for.
        index: usize,
        /// Adapters found.
        found: usize,
    },
    /// A replica's device is of another backend than rank 0's.
    #[error("replica {rank}'s device `{requested}` is on {backend}, rank 0's on {main}: every replica must use the same backend")]
    MixedBackends {
        /// The replica's rank.
        rank: usize,
        /// What was asked for it.
        requested: String,
        /// The backend it resolved to.
        backend: &'static str,
        /// Rank 0's backend.
        main: &'static str,
    },
    /// A logical device could not be created on a wgpu adapter.
    #[error("cannot create a logical device on wgpu adapter {index}: {reason}")]
    LogicalDevice {
        /// The adapter index.
        index: usize,
        /// Why not.
        reason: String,
    },
}
