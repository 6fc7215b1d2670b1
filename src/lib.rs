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
//!   cadence, events, cancellation); [`job_cli`] is `trainer run`.
//! - [`digits`] and [`mlp`]: the bundled digits data and an MLP classifier, which the example,
//!   the tests and the benchmarks use.
//! - [`plot`] and [`schedule_preview`]: SVG curves, and a schedule's learning rates step by step
//!   (what `trainer schedule` prints).
#![warn(missing_docs)]

pub use trainer_core as core;
pub use trainer_gpu as gpu;
pub use trainer_job as job;

pub mod curves;
pub mod digits;
pub mod job_cli;

// The README's snippets are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub mod mlp;
pub mod plot;
pub mod schedule_preview;

/// Everything a training program usually needs.
pub mod prelude {
    pub use trainer_core::prelude::*;
    pub use trainer_gpu::{launch, DeviceRequest, Launch, Selection};
}
