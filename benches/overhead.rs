//! The trainer's own cost per step: the same training steps through `SupervisedTrainer` and
//! through a hand-written burn loop (same MLP, data, batch order and Adam, on ndarray).
//!
//! `cargo bench --bench overhead`; the ratio of the two times per step is the overhead.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trainer::digits::{self, DigitItem, DigitsBatcher};
use trainer::mlp::MlpConfig;
use trainer::prelude::*;
use trainer_core::data::epoch_order;
use trainer_gpu::NdArrayBackend as B;

const BATCH: usize = 32;
const STEPS: usize = 39; // one epoch of the 1257 training images, last short batch dropped
const HIDDEN: usize = 128;
const LR: f64 = 1e-3;
const SEED: u64 = 1;

fn train_items() -> Vec<DigitItem> {
    let items = digits::load(digits::bundled_path()).expect("bundled digits");
    digits::split(items, 0, 0.15, 0.15).train
}

fn model() -> trainer::mlp::Mlp<B> {
    MlpConfig::new(digits::PIXELS, vec![HIDDEN], digits::CLASSES).init::<B>(SEED, &Default::default())
}

/// What a burn user writes by hand: shuffle, batch, forward, backward, step, and keep the loss
/// on the device for logging.
fn hand_written(items: &[DigitItem]) -> f32 {
    let device = Default::default();
    let mut model = model();
    let mut optimizer = AdamConfig::new().init();
    let order = epoch_order(items.len(), Some(SEED), 0);
    let mut loss_sum = None;
    for step in 0..STEPS {
        let batch_items = order[step * BATCH..(step + 1) * BATCH].iter().map(|&i| items[i].clone()).collect();
        let batch = Batcher::<B, _, _>::batch(&DigitsBatcher, batch_items, &device);
        let output = model.classify(batch);
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        let loss = output.loss.inner();
        loss_sum = Some(match loss_sum {
            Some(sum) => loss + sum,
            None => loss,
        });
        model = optimizer.step(LR, model, grads);
    }
    loss_sum.expect("steps ran").into_scalar()
}

fn through_trainer(items: Vec<DigitItem>) -> usize {
    let config = TrainerConfig::new(LR)
        .with_epochs(None)
        .with_max_steps(Some(STEPS))
        .with_batch_size(BATCH)
        .with_seed(SEED)
        .with_drop_last(true)
        .with_validation(None)
        .with_log_every(STEPS);
    let mut trainer = SupervisedTrainer::builder(model(), AdamConfig::new().init(), config, Default::default())
        .train_data(InMemDataset::new(items), DigitsBatcher)
        .build()
        .expect("valid config");
    trainer.fit().expect("training runs").steps
}

fn overhead(c: &mut Criterion) {
    let items = train_items();
    let mut group = c.benchmark_group("mlp_64_128_10_adam_batch32");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.sample_size(30);
    group.bench_function("hand_written_loop", |b| b.iter(|| hand_written(&items)));
    group.bench_function("trainer", |b| {
        b.iter_batched(|| items.clone(), through_trainer, BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
