//! `trainer`: a training toolkit for [burn](https://burn.dev) 0.21.
//!
//! A burn user writes a model and its step; `trainer` runs the loop around it: epochs and steps,
//! a deterministic resumable data loader, validation and test passes, callbacks, gradient
//! accumulation and clipping, device-side metrics, on wgpu (Vulkan, Metal, DX12) or on the CPU
//! (ndarray) from one code base.
//!
//! - [`core`] (crate `trainer-core`): the backend-generic machinery.
//! - [`gpu`] (crate `trainer-gpu`): backends and device choice.
//! - [`job`] (crate `trainer-job`): the job runtime (JSON job spec, parquet feed, step hooks,
//!   cadence, events, cancellation); [`job::cli`] is `trainer run`'s command line, for runner
//!   programs of your own trainers.
//!
//! The `trainer` command line lives in `src/cli/`; the digits data and MLP the examples, tests
//! and benches share, in `examples/support/`.
#![warn(missing_docs)]

pub mod allocator;

pub use trainer_core as core;
pub use trainer_gpu as gpu;
pub use trainer_job as job;

// The README's snippets are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Everything a training program usually needs.
pub mod prelude {
    pub use trainer_core::prelude::*;
    pub use trainer_gpu::{launch, launch_replicas, DeviceRequest, Launch, Selection};
}
