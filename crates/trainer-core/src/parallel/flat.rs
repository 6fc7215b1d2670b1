//! One buffer for all the gradients of an optimizer step, so that replicas exchange them in one
//! collective call instead of one per parameter.
//!
//! The buffer holds the gradients of the model's trainable parameters end to end, in the order
//! the model visits them (the same on every replica: same type, same parameters), then one flag
//! per parameter: 1 where the replica had a gradient, 0 where it put zeros in its place. After
//! the average, a parameter that no replica had a gradient for gets none, as on one device (an
//! optimizer step with a zero gradient would still move it through the optimizer's momentum).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

/// A step's gradients in one buffer, and this replica's presence flags on the host.
pub(crate) struct Flat<B: burn::tensor::backend::Backend> {
    /// The gradients end to end, then the presence flags (see the module's doc).
    pub buffer: Tensor<B, 1>,
    /// 1 where this replica had a gradient, 0 where it put zeros.
    pub flags: Vec<f32>,
}

/// Lays the gradients of `model`'s trainable parameters out in one 1-D tensor on `device`, with
/// the presence flags at its end (see the module's doc).
pub(crate) fn flatten<B, M>(
    model: &M,
    mut grads: GradientsParams,
    device: &burn::tensor::Device<B::InnerBackend>,
) -> Flat<B::InnerBackend>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let mut visitor = Flatten::<B> {
        grads: &mut grads,
        parts: Vec::new(),
        flags: Vec::new(),
        device,
    };
    model.visit(&mut visitor);
    let Flatten {
        mut parts, flags, ..
    } = visitor;
    parts.push(Tensor::from_floats(flags.as_slice(), device));
    Flat {
        buffer: Tensor::cat(parts, 0),
        flags,
    }
}

/// The gradients in a buffer [`flatten`] made (after the replicas' average), by parameter;
/// `local_flags` are this replica's own.
pub(crate) fn unflatten<B, M>(
    model: &M,
    buffer: Tensor<B::InnerBackend, 1>,
    local_flags: &[f32],
) -> GradientsParams
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    // A parameter this replica has a gradient for has one after the average: only when this
    // replica lacks some do the averaged flags have to come back to the host (a device sync).
    let flags = if local_flags.iter().all(|&flag| flag > 0.0) {
        local_flags.to_vec()
    } else {
        let len = buffer.dims()[0];
        buffer
            .clone()
            .slice(len - local_flags.len()..len)
            .into_data()
            .convert::<f32>()
            .into_vec()
            .expect("the flags are floats")
    };
    let mut visitor = Unflatten::<B> {
        buffer,
        offset: 0,
        flags,
        index: 0,
        grads: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.grads
}

/// Whether the optimizer trains this parameter (frozen ones have no gradient on any replica).
fn trainable<B: AutodiffBackend, const D: usize>(param: &Param<Tensor<B, D>>) -> bool {
    param.is_require_grad()
}

struct Flatten<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    parts: Vec<Tensor<B::InnerBackend, 1>>,
    flags: Vec<f32>,
    device: &'a burn::tensor::Device<B::InnerBackend>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !trainable(param) {
            return;
        }
        let numel = param.shape().num_elements();
        match self.grads.remove::<B::InnerBackend, D>(param.id) {
            Some(grad) => {
                self.parts.push(grad.reshape([numel]));
                self.flags.push(1.0);
            }
            None => {
                self.parts.push(Tensor::zeros([numel], self.device));
                self.flags.push(0.0);
            }
        }
    }
}

struct Unflatten<B: AutodiffBackend> {
    buffer: Tensor<B::InnerBackend, 1>,
    offset: usize,
    flags: Vec<f32>,
    index: usize,
    grads: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !trainable(param) {
            return;
        }
        let shape = param.shape();
        let numel = shape.num_elements();
        let start = self.offset;
        self.offset += numel;
        let present = self.flags[self.index] > 0.0;
        self.index += 1;
        if present {
            let grad = self
                .buffer
                .clone()
                .slice(start..start + numel)
                .reshape(shape);
            self.grads.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Distribution, Tensor};
    use burn_autodiff::Autodiff;
    use burn_ndarray::NdArray;

    use super::*;

    type B = Autodiff<NdArray>;

    #[derive(Module, Debug)]
    struct TwoLayers<B: burn::tensor::backend::Backend> {
        used: Linear<B>,
        unused: Linear<B>,
    }

    #[test]
    fn gradients_travel_whole_and_missing_ones_stay_missing() {
        let device = Default::default();
        let model = TwoLayers::<B> {
            used: LinearConfig::new(3, 2).init(&device),
            unused: LinearConfig::new(2, 2).init(&device),
        };
        let x = Tensor::<B, 2>::random([4, 3], Distribution::Default, &device);
        let loss = model.used.forward(x).powf_scalar(2.0).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let weight = grads
            .get::<NdArray, 2>(model.used.weight.id)
            .expect("a weight gradient");
        let bias = grads
            .get::<NdArray, 1>(model.used.bias.as_ref().unwrap().id)
            .expect("a bias gradient");

        let flat = flatten::<B, _>(&model, grads, &device);
        // 3*2 + 2 + 2*2 + 2 values, then 4 flags.
        assert_eq!(flat.buffer.dims(), [14 + 4]);
        assert_eq!(flat.flags, [1.0, 1.0, 0.0, 0.0]);
        // Another replica had the unused layer's gradients: after the average its flags are
        // 0.5, and this replica, which lacked them, reads them back and takes those gradients.
        let averaged = Tensor::cat(
            vec![
                flat.buffer.clone().slice(0..14),
                Tensor::from_floats([1.0, 1.0, 0.5, 0.5], &device),
            ],
            0,
        );
        assert_eq!(unflatten::<B, _>(&model, averaged, &flat.flags).len(), 4);
        let back = unflatten::<B, _>(&model, flat.buffer, &flat.flags);
        assert_eq!(back.len(), 2, "the unused layer gets no gradient");
        back.get::<NdArray, 2>(model.used.weight.id)
            .unwrap()
            .into_data()
            .assert_eq(&weight.into_data(), true);
        back.get::<NdArray, 1>(model.used.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .assert_eq(&bias.into_data(), true);
    }
}
