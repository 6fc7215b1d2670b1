//! The helper kit for trainers written against [`StepHooks`](crate::StepHooks): seeding, a
//! loss as a number, PyTorch's AdamW with a warmup → cosine schedule, and saving only the
//! trainable part of a model (a LoRA adapter) with its optimizer state.

mod adamw;
mod trainable;

pub use adamw::{default_adamw_bundle, AdamWBundle};
pub use trainable::{load_trainable_module, save_trainable_module, TrainableEntry};

use burn::tensor::{backend::Backend, ElementConversion, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::HookResult;

/// Seeds burn's backend RNG on `device` (parameter initialisation, dropout, `Tensor::random`)
/// and returns a host generator for the trainer's own draws, both from `seed`: the same seed
/// gives the same draws in every run. The runtime's [`StepContext::seed`](crate::StepContext)
/// gives a seed per step for draws that must repeat after a resume.
///
/// ```
/// use rand::Rng;
/// type B = burn_ndarray::NdArray<f32>;
/// let device = Default::default();
/// let mut rng = trainer_job::helpers::seed_everything::<B>(7, &device);
/// let a: u64 = rng.random();
/// let x = burn::tensor::Tensor::<B, 1>::random([3], burn::tensor::Distribution::Default, &device);
/// let mut again = trainer_job::helpers::seed_everything::<B>(7, &device);
/// assert_eq!(a, again.random::<u64>());
/// let y = burn::tensor::Tensor::<B, 1>::random([3], burn::tensor::Distribution::Default, &device);
/// assert_eq!(x.into_data(), y.into_data());
/// ```
pub fn seed_everything<B: Backend>(seed: u64, device: &B::Device) -> ChaCha8Rng {
    B::seed(device, seed);
    ChaCha8Rng::seed_from_u64(seed)
}

/// The value of a one-element float tensor of any backend and float type (a loss, a mean) as
/// an `f64`; a tensor of another size is an error naming its shape, not a panic. It reads the
/// tensor back from the device: for metrics that may stay on the device until they are
/// emitted, return [`Scalar::Device`](crate::Scalar) instead.
///
/// ```
/// type B = burn_ndarray::NdArray<f32>;
/// let loss = burn::tensor::Tensor::<B, 1>::from_floats([0.25], &Default::default());
/// assert_eq!(trainer_job::helpers::float_scalar(loss).unwrap(), 0.25);
/// let two = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0], &Default::default());
/// assert!(trainer_job::helpers::float_scalar(two).is_err());
/// ```
pub fn float_scalar<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> HookResult<f64> {
    let shape = tensor.shape();
    if shape.num_elements() != 1 {
        return Err(format!(
            "a scalar has one element; this tensor has shape {:?}",
            shape.to_vec()
        )
        .into());
    }
    let value = tensor
        .try_into_scalar()
        .map_err(|e| format!("reading the scalar back: {e:?}"))?;
    Ok(value.elem::<f64>())
}
