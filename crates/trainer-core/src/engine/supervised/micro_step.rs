//! The parts of a training step every replica does alike: the forward and backward pass of one
//! batch, and the optimizer step (with the replicas' gradient average when there are several).

use std::time::Duration;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::BACKEND_RNG;
use crate::config::GradientClipping;
use crate::data::mix_seed;
use crate::engine::clip_gradients;
use crate::step::{StepOutput, TrainStep};

/// A batch's gradients, its output (detached, for the metrics) and its size.
pub(super) struct Backward<B: AutodiffBackend> {
    pub grads: GradientsParams,
    pub output: StepOutput<B::InnerBackend>,
    pub batch_size: usize,
}

/// The seed of the backend's random ops (dropout) for one batch: a stream fixed by the run's
/// seed, the epoch and the batch's place in the epoch's order (with replicas, each replica's
/// batch has its own place), so a resumed run repeats them.
pub(super) fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    mix_seed(mix_seed(seed, epoch as u64), batch as u64)
}

/// Forward and backward of `batch`, the loss scaled by `loss_scale` (1 leaves it as it is).
/// Waiting for the backend RNG takes at most `rng_wait` when given (replicas: a stuck one
/// holds it).
pub(super) fn forward_backward<B, M, TB>(
    model: &M,
    batch: TB,
    device: &B::Device,
    seed: u64,
    loss_scale: f64,
    rng_wait: Option<Duration>,
) -> Result<Backward<B>, String>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
{
    let output = {
        // burn's backend RNG is global to the process: the lock keeps trainers (and replicas)
        // on other threads from drawing from this batch's stream.
        let _rng = BACKEND_RNG.acquire(rng_wait)?;
        B::seed(device, seed);
        TrainStep::step(model, batch)
    };
    let batch_size = output.batch_size;
    let loss = if loss_scale != 1.0 {
        output.loss.clone().mul_scalar(loss_scale)
    } else {
        output.loss.clone()
    };
    let grads = GradientsParams::from_grads(loss.backward(), model);
    Ok(Backward {
        grads,
        output: output.detach_inner(),
        batch_size,
    })
}

/// Clips the (averaged) gradients and steps the optimizer.
pub(super) fn apply_gradients<B, M, O>(
    optimizer: &mut O,
    model: M,
    mut grads: GradientsParams,
    lr: f64,
    clipping: Option<GradientClipping>,
) -> M
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    if let Some(clipping) = clipping {
        clip_gradients(&model, &mut grads, clipping);
    }
    optimizer.step(lr, model, grads)
}

/// How much a replica's batch weighs in the average: its share of the step's items times the
/// replica count (1 when every replica's batch is as large), so that the mean of the replicas'
/// mean-loss gradients is the gradient of the mean loss over all their items.
pub(super) fn replica_weight(own_items: usize, all_items: usize, replicas: usize) -> f64 {
    if own_items * replicas == all_items {
        1.0
    } else {
        (own_items * replicas) as f64 / all_items as f64
    }
}
