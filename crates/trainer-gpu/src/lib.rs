//! Backends for `trainer`: wgpu (Vulkan, Metal, DX12), and on the CPU burn-flex (feature
//! `flex`, the faster) and burn-ndarray (the default); and the choice between them.
//!
//! burn picks its backend by type, so a program hands a backend-generic job to [`launch`], which
//! picks a device ([`DeviceRequest`], overridable by the `TRAINER_DEVICE` environment variable)
//! and runs the job monomorphized for that backend:
//!
//! ```
//! use burn::tensor::{backend::AutodiffBackend, ElementConversion, Tensor};
//! use trainer_gpu::{launch, DeviceRequest, Launch, Selection};
//!
//! struct SumJob;
//!
//! impl Launch for SumJob {
//!     type Output = f32;
//!     fn launch<B: AutodiffBackend>(
//!         self,
//!         device: B::Device,
//!         _replica_devices: Vec<B::Device>,
//!         _selection: &Selection,
//!     ) -> f32 {
//!         Tensor::<B, 1>::from_floats([1.0, 2.0, 3.0], &device).sum().into_scalar().elem()
//!     }
//! }
//!
//! # #[cfg(feature = "ndarray")] {
//! let (selection, sum) = launch(DeviceRequest::Cpu, SumJob).unwrap();
//! assert_eq!(sum, 6.0);
//! println!("{selection}");
//! # }
//! ```
#![warn(missing_docs)]

mod adapters;
mod backend;
mod error;
mod launch;
mod replicas;
mod request;

pub use adapters::{wgpu_adapters, AdapterSummary};
#[cfg(feature = "flex")]
pub use backend::FlexBackend;
#[cfg(feature = "ndarray")]
pub use backend::NdArrayBackend;
#[cfg(feature = "wgpu")]
pub use backend::WgpuBackend;
pub use backend::{compiled_backends, BackendKind};
pub use error::GpuError;
pub use launch::{launch, launch_replicas, select, Launch, SelectedDevice, Selection};
pub use replicas::{select_replicas, ReplicaDevice};
pub use request::{DeviceRequest, DEVICE_ENV};
