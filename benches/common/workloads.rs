//! The overhead workloads, shared by `benches/overhead.rs` (wall clock, criterion) and
//! `examples/step_overhead.rs` (one fixed run, for instruction counts under callgrind).
#![allow(dead_code)]

use crate::support::digits::{self, DigitItem, DigitsBatcher};
use crate::support::mlp::MlpConfig;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use trainer::prelude::*;
use trainer_core::data::epoch_order;
use trainer_gpu::NdArrayBackend as B;

const LR: f64 = 1e-3;
const SEED: u64 = 1;

/// One benchmarked workload: an MLP shape, a batch size and a number of optimizer steps.
#[derive(Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub hidden: &'static [usize],
    pub batch: usize,
    pub steps: usize,
}

pub const WORKLOADS: [Workload; 2] = [
    // The example's model: small kernels, so the loop's own cost shows most.
    Workload {
        name: "mlp_64_128_10_batch32",
        hidden: &[128],
        batch: 32,
        steps: 39,
    },
    // Kernel-bound: matrix products dominate.
    Workload {
        name: "mlp_64_512_512_10_batch256",
        hidden: &[512, 512],
        batch: 256,
        steps: 12,
    },
];

pub fn train_items() -> Vec<DigitItem> {
    let items = digits::load(digits::bundled_path()).expect("bundled digits");
    digits::split(items, 0, 0.15, 0.15).train
}

fn model(w: Workload) -> crate::support::mlp::Mlp<B> {
    MlpConfig::new(digits::PIXELS, w.hidden.to_vec(), digits::CLASSES)
        .init::<B>(SEED, &Default::default())
}

/// What a burn user writes by hand: shuffle per epoch, batch, forward, backward, step, and keep
/// the loss and the number of correct predictions on the device for logging (the trainer reports
/// both).
pub fn hand_written(w: Workload, items: &[DigitItem]) -> f32 {
    let device = Default::default();
    let mut model = model(w);
    let mut optimizer = AdamConfig::new().init();
    let per_epoch = items.len() / w.batch;
    let mut order = Vec::new();
    let mut loss_sum = None;
    let mut correct = None;
    for step in 0..w.steps {
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        if index == 0 {
            order = epoch_order(items.len(), Some(SEED), epoch);
        }
        let batch_items = order[index * w.batch..(index + 1) * w.batch]
            .iter()
            .map(|&i| items[i].clone())
            .collect();
        let batch = Batcher::<B, _, _>::batch(&DigitsBatcher, batch_items, &device);
        let output = model.classify(batch);
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        let classification = output
            .classification_items()
            .cloned()
            .expect("a classifier");
        let loss = output.loss.inner().mul_scalar(w.batch as f64);
        loss_sum = Some(match loss_sum {
            Some(sum) => loss + sum,
            None => loss,
        });
        let hits = classification
            .logits
            .inner()
            .argmax(1)
            .reshape([-1])
            .equal(classification.targets.inner())
            .int()
            .sum();
        correct = Some(match correct {
            Some(sum) => hits + sum,
            None => hits,
        });
        model = optimizer.step(LR, model, grads);
    }
    let _ = correct.expect("steps ran").into_scalar();
    loss_sum.expect("steps ran").into_scalar() / (w.steps * w.batch) as f32
}

pub fn through_trainer(w: Workload, items: Vec<DigitItem>) -> usize {
    let config = TrainerConfig::new(LR)
        .with_epochs(None)
        .with_max_steps(Some(w.steps))
        .with_batch_size(w.batch)
        .with_seed(SEED)
        .with_drop_last(true)
        .with_validation(None)
        .with_log_every(w.steps);
    let mut trainer = SupervisedTrainer::builder(
        model(w),
        AdamConfig::new().init(),
        config,
        Default::default(),
    )
    .train_data(InMemDataset::new(items), DigitsBatcher)
    .build()
    .expect("valid config");
    trainer.fit().expect("training runs").steps
}
