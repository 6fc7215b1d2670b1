//! One schedule step against one MLP training step (the digits example's model, batch 32,
//! Adam, ndarray), side by side: the schedule's share of a step.
//!
//! `cargo bench --bench schedule`

#[path = "../examples/support/mod.rs"]
mod support;

use std::cell::RefCell;

use burn::data::dataloader::batcher::Batcher;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use support::digits::{self, DigitsBatcher};
use support::mlp::MlpConfig;
use trainer_core::schedule::ScheduleConfig;
use trainer_gpu::NdArrayBackend as B;

const SCHEDULES: [(&str, &str); 4] = [
    (
        "StepLR",
        r#"{"scheduler": "StepLR", "params": {"step_size": 30, "gamma": 0.1}}"#,
    ),
    (
        "OneCycleLR",
        r#"{"scheduler": "OneCycleLR", "params": {"max_lr": 0.1, "total_steps": 1000000}}"#,
    ),
    (
        "Warmup+CosineAnnealingWarmRestarts",
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 100, "then":
            {"scheduler": "CosineAnnealingWarmRestarts", "params": {"T_0": 10, "T_mult": 2}}}}"#,
    ),
    (
        "ReduceLROnPlateau",
        r#"{"scheduler": "ReduceLROnPlateau", "params": {"patience": 5}}"#,
    ),
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule_vs_train_step");

    let items = digits::split(
        digits::load(digits::bundled_path()).expect("bundled digits"),
        0,
        0.15,
        0.15,
    )
    .train;
    let device = Default::default();
    let batch = Batcher::<B, _, _>::batch(&DigitsBatcher, items[..32].to_vec(), &device);
    let model = RefCell::new(Some(
        MlpConfig::new(digits::PIXELS, vec![128], digits::CLASSES).init::<B>(1, &device),
    ));
    let mut optimizer = AdamConfig::new().init();
    group.bench_function("mlp_train_step", |b| {
        b.iter(|| {
            let current = model.borrow_mut().take().expect("model");
            let output = current.classify(batch.clone());
            let grads = GradientsParams::from_grads(output.loss.backward(), &current);
            *model.borrow_mut() = Some(optimizer.step(1e-3, current, grads));
        })
    });

    for (name, json) in SCHEDULES {
        let config: ScheduleConfig = serde_json::from_str(json).expect("valid config");
        let mut schedule = config.build(0.1).expect("valid schedule");
        let plateau = schedule.needs_metric();
        let mut metric = 1.0f64;
        group.bench_function(format!("schedule_step/{name}"), |b| {
            b.iter(|| {
                if plateau {
                    metric *= 0.9999;
                    schedule.step_with_metric(black_box(metric));
                } else {
                    schedule.step();
                }
                black_box(schedule.lr())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
