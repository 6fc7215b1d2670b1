//! The trainer's own cost per step: the same training steps through `SupervisedTrainer` and
//! through a hand-written burn loop (same MLP, data, batch order, metrics and Adam, on ndarray).
//!
//! `cargo bench --bench overhead`; the ratio of the two times is the trainer's overhead. On a
//! shared machine wall-clock noise is larger than the overhead: `examples/step_overhead.rs` counts
//! instructions instead (see `docs/benchmarks.md`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

#[path = "../examples/support/mod.rs"]
mod support;
#[path = "common/workloads.rs"]
mod workloads;

use workloads::{hand_written, through_trainer, train_items, WORKLOADS};

fn overhead(c: &mut Criterion) {
    let items = train_items();
    for w in WORKLOADS {
        let mut group = c.benchmark_group(w.name);
        group.throughput(Throughput::Elements(w.steps as u64));
        group.sample_size(30);
        group.bench_function("hand_written_loop", |b| b.iter(|| hand_written(w, &items)));
        group.bench_function("trainer", |b| {
            b.iter_batched(
                || items.clone(),
                |items| through_trainer(w, items),
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, overhead);
criterion_main!(benches);
