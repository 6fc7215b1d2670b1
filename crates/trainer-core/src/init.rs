//! Layers initialised from a seed on the host, so that every backend starts from the same
//! weights (burn's backend generator is global to the process: another trainer in the process
//! could change what it draws).

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Linear layers `widths[0] → widths[1] → ...`, weights and biases drawn from `U(-k, k)`,
/// `k = 1/√fan_in` (PyTorch's and burn's default), layer by layer (weight, then bias) from one
/// ChaCha8 stream seeded with `seed`: the same seed gives bit-identical layers on every backend.
///
/// ```
/// use burn_ndarray::NdArray;
/// use trainer_core::init::seeded_linears;
///
/// let device = Default::default();
/// let a = seeded_linears::<NdArray>(&[4, 8, 2], 7, &device);
/// let b = seeded_linears::<NdArray>(&[4, 8, 2], 7, &device);
/// assert_eq!(a.len(), 2);
/// assert_eq!(a[0].weight.val().into_data(), b[0].weight.val().into_data());
/// ```
pub fn seeded_linears<B: Backend>(
    widths: &[usize],
    seed: u64,
    device: &B::Device,
) -> Vec<Linear<B>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    widths
        .windows(2)
        .map(|w| seeded_linear(w[0], w[1], &mut rng, device))
        .collect()
}

fn seeded_linear<B: Backend>(
    inputs: usize,
    outputs: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Linear<B> {
    let k = 1.0 / (inputs as f32).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
    let weight = draw(inputs * outputs);
    let bias = draw(outputs);
    let mut linear = LinearConfig::new(inputs, outputs).init(device);
    linear.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weight, [inputs, outputs]),
        device,
    ));
    linear.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(bias, [outputs]),
        device,
    )));
    linear
}

/// Initialises every parameter of `module` that burn left lazy (reading one initialises it).
///
/// burn draws a layer's weights when they are first read, and a clone of a parameter not yet
/// read draws its own values: call this before cloning a module whose copies must hold the same
/// weights (replicas, a stored copy).
pub fn materialize<B: Backend, M: burn::module::Module<B>>(module: &M) {
    struct Materialize;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, burn::tensor::Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, burn::tensor::Bool>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Materialize);
}
