//! Checkpoint speed on a 10M-parameter MLP (64-2560-3840-10, 10,039,050 parameters) with Adam
//! state (two moments per parameter): about 120 MB of tensors.
//!
//! - `sync_save`: snapshot, encode, atomic write with fsync (`SupervisedTrainer::save_checkpoint`);
//! - `load`: read, verify, decode, shape checks, load into model and optimizer;
//! - `async_stall`: what the training thread waits for with background saving: taking the
//!   snapshot and handing it to an idle `CheckpointWriter` (measured side by side with sync
//!   saves in a plain loop, printed as one line);
//! - `std_fs_write` / `std_fs_read`: the same number of bytes written (with fsync) and read with
//!   `std::fs`, the floor the ratios in `docs/benchmarks.md` are taken against.
//!
//! `cargo bench --bench checkpoint`

#[path = "../examples/support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use criterion::{criterion_group, criterion_main, Criterion};
use support::digits::{self, DigitsBatcher};
use support::mlp::MlpConfig;
use trainer::prelude::*;
use trainer_core::checkpoint::{write_atomic, CheckpointWriter};
use trainer_gpu::NdArrayBackend as B;

fn checkpoints(c: &mut Criterion) {
    let device = Default::default();
    let items = digits::load(digits::bundled_path()).expect("bundled digits");
    let model =
        MlpConfig::new(digits::PIXELS, vec![2560, 3840], digits::CLASSES).init::<B>(1, &device);
    let config = TrainerConfig::new(1e-3)
        .with_max_steps(Some(1))
        .with_batch_size(32);
    let mut trainer = SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
        .train_data(InMemDataset::new(items[..32].to_vec()), DigitsBatcher)
        .build()
        .expect("trainer");
    // One step, so that Adam holds its moments.
    trainer.fit().expect("one step");

    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("bench.ckpt");
    trainer.save_checkpoint(&path).expect("save");
    let bytes = std::fs::metadata(&path).expect("checkpoint written").len();
    println!("checkpoint file: {bytes} bytes");

    let mut group = c.benchmark_group("checkpoint_10m_params");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("sync_save", |b| {
        b.iter(|| trainer.save_checkpoint(&path).expect("save"))
    });
    group.bench_function("load", |b| {
        b.iter(|| trainer.load_checkpoint(&path).expect("load"))
    });
    let raw = vec![0x5au8; bytes as usize];
    let plain = dir.path().join("plain.bin");
    group.bench_function("std_fs_write", |b| {
        b.iter(|| {
            let mut file = std::fs::File::create(&plain).expect("create");
            file.write_all(&raw).expect("write");
            file.sync_all().expect("fsync");
        })
    });
    group.bench_function("std_fs_read", |b| {
        b.iter(|| std::fs::read(&plain).expect("read"))
    });
    group.finish();
    async_stall(&mut trainer, dir.path());
}

/// The training thread's stall with background saving, side by side with synchronous saves.
/// Not a criterion loop: each stall is microseconds but frees the thread only after a whole save,
/// which criterion's iteration-count planning cannot represent.
fn async_stall(trainer: &mut Trainer10M, dir: &std::path::Path) {
    const SAVES: usize = 10;
    let writer = CheckpointWriter::new(1);
    let (mut stalls, mut syncs) = (Vec::new(), Vec::new());
    for i in 0..SAVES {
        let started = Instant::now();
        let snapshot = Arc::new(trainer.snapshot().expect("snapshot"));
        let target = dir.join(format!("async-{i}.ckpt"));
        writer.submit(move || {
            let bytes = snapshot.encode().expect("encode");
            write_atomic(&target, &bytes).expect("write");
        });
        stalls.push(started.elapsed());
        // The next save finds the writer idle, as in training between checkpoints.
        writer.wait();
        let started = Instant::now();
        trainer
            .save_checkpoint(dir.join("sync.ckpt"))
            .expect("save");
        syncs.push(started.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (stall, sync) = (median(&mut stalls), median(&mut syncs));
    println!(
        "checkpoint_10m_params/async_stall: median {stall:?} over {SAVES} saves; sync save median {sync:?}; stall/sync = {:.5}",
        stall.as_secs_f64() / sync.as_secs_f64()
    );
}

type Trainer10M = SupervisedTrainer<
    B,
    support::mlp::Mlp<B>,
    burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, support::mlp::Mlp<B>, B>,
    support::digits::DigitsBatch<B>,
    support::digits::DigitsBatch<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>,
>;

criterion_group!(benches, checkpoints);
criterion_main!(benches);
