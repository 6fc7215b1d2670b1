//! Moving a model or an optimizer's state to another device through the host.
//!
//! burn-wgpu 0.21 cannot copy a tensor from one wgpu device to another (cubecl-runtime 0.10's
//! device-to-device copy is `unimplemented!()` for wgpu), so `Module::fork` between two wgpu
//! devices panics. A replica on another device than rank 0's gets its copy this way instead:
//! every tensor read back to the host and made again on the replica's device.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, Record};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor};

/// `model` on `device`, with the same parameter ids, values and `require_grad` flags.
pub(crate) fn move_model<B: Backend, M: Module<B>>(model: M, device: &B::Device) -> M {
    model.map(&mut ToDevice { device })
}

/// `optimizer` with its state (moments, step counts) on `device`.
pub(crate) fn move_optimizer<B, M, O>(optimizer: O, device: &B::Device) -> O
where
    B: AutodiffBackend,
    M: burn::module::AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let host = optimizer.to_record().into_item::<FullPrecisionSettings>();
    optimizer.load_record(O::Record::from_item::<FullPrecisionSettings>(host, device))
}

struct ToDevice<'a, B: Backend> {
    device: &'a B::Device,
}

impl<B: Backend> ModuleMapper<B> for ToDevice<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            let moved = Tensor::from_data(tensor.into_data(), self.device);
            if require_grad {
                moved.require_grad()
            } else {
                moved
            }
        })
    }

    fn map_int<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Int>>,
    ) -> Param<Tensor<B, D, Int>> {
        param.map(|tensor| Tensor::from_data(tensor.into_data(), self.device))
    }

    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Bool>>,
    ) -> Param<Tensor<B, D, Bool>> {
        param.map(|tensor| Tensor::from_data(tensor.into_data(), self.device))
    }
}

#[cfg(test)]
mod tests {
    use burn::module::AutodiffModule;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::tensor::{Distribution, Tensor};
    use burn_autodiff::Autodiff;
    use burn_ndarray::NdArray;

    use super::*;
    use crate::parallel::fingerprint::weights_fingerprint;

    type B = Autodiff<NdArray>;

    fn bytes(linear: &Linear<B>) -> Vec<u8> {
        linear.weight.val().into_data().bytes.to_vec()
    }

    #[test]
    fn a_moved_model_and_optimizer_step_exactly_as_the_originals() {
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(3, 2).init(&device);
        let mut optimizer = AdamConfig::new().init::<B, Linear<B>>();
        let step = |model: Linear<B>, optimizer: &mut _| {
            let x = Tensor::<B, 2>::random([4, 3], Distribution::Default, &device);
            let loss = model.forward(x).powf_scalar(2.0).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            Optimizer::step(optimizer, 1e-2, model, grads)
        };
        <B as burn::tensor::backend::Backend>::seed(&device, 3);
        let model = step(model, &mut optimizer);
        // Moved after a step: the optimizer has moments to carry.
        let moved = move_model(model.clone(), &device);
        let mut moved_optimizer = move_optimizer::<B, _, _>(optimizer.clone(), &device);
        assert_eq!(moved.weight.id, model.weight.id);
        assert!(moved.weight.val().is_require_grad());
        assert_eq!(bytes(&moved), bytes(&model));
        <B as burn::tensor::backend::Backend>::seed(&device, 4);
        let original = step(model, &mut optimizer);
        <B as burn::tensor::backend::Backend>::seed(&device, 4);
        let copy = step(moved, &mut moved_optimizer);
        assert_eq!(bytes(&copy), bytes(&original));
        assert_eq!(
            weights_fingerprint(&copy.valid()),
            weights_fingerprint(&original.valid())
        );
    }
}
