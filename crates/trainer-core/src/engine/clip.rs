use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{backend::AutodiffBackend, Tensor};

use crate::config::GradientClipping;

/// Clips the gradients of `module`'s parameters in place, on the device (no host read).
///
/// [`GradientClipping::Norm`] scales every gradient by `min(1, max / (‖g‖ + 1e-6))` where `‖g‖`
/// is the L2 norm over all gradients together, as PyTorch's `clip_grad_norm_`;
/// [`GradientClipping::Value`] clamps each element into `[-v, v]`.
pub fn clip_gradients<B, M>(module: &M, grads: &mut GradientsParams, clipping: GradientClipping)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    match clipping {
        GradientClipping::Value(value) => {
            module.visit(&mut ClampVisitor::<B> {
                grads,
                value,
                backend: std::marker::PhantomData,
            });
        }
        GradientClipping::Norm(max_norm) => {
            let mut norm = SquaredNormVisitor::<B> { grads, total: None };
            module.visit(&mut norm);
            let Some(total) = norm.total else { return };
            let scale = total
                .sqrt()
                .add_scalar(1e-6)
                .recip()
                .mul_scalar(max_norm)
                .clamp_max(1.0);
            module.visit(&mut ScaleVisitor::<B> { grads, scale });
        }
    }
}

struct SquaredNormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = (grad.clone() * grad).sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

struct ScaleVisitor<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    scale: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let scale = self.scale.clone().reshape([1usize; D]);
            self.grads.register(param.id, grad * scale);
        }
    }
}

struct ClampVisitor<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    value: f64,
    backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ClampVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register(param.id, grad.clamp(-self.value, self.value));
        }
    }
}
