//! Checkpoint speed and memory against the disk's own, on MLPs of 10M and 100M parameters with
//! Adam state (two moments per parameter): about 120 MB and 1.2 GB of tensors.
//!
//! Side by side in one loop, per backend (ndarray, and flex with `--features flex`) and size:
//!
//! - `save`: a synchronous save (`SupervisedTrainer::save_checkpoint`: snapshot, host copy,
//!   encoding streamed into a temporary file, fsync, rename);
//! - `write`: the same number of bytes written with `std::fs` and fsynced, the floor;
//! - `load`: `SupervisedTrainer::load_checkpoint` (read, checksum, scan, decode, record checks,
//!   load into model and optimizer);
//! - `load again`: a second load straight after the first, into the memory the first has just
//!   freed (on a virtual machine that hands freed memory back to its host, memory the guest has
//!   not touched for a while costs a fault in the host too; see `docs/benchmarks.md`);
//! - `read`: the file read with `std::fs::read`, the floor;
//! - `read+copy`: the file read and then copied once into fresh 16-byte-aligned memory, the
//!   floor of any load that decodes tensors out of a read buffer (as burn's `Record` decoding
//!   does: each tensor must leave the buffer into memory of its own);
//! - `load allocates`: the bytes a load allocates (frees not subtracted), as a multiple of the
//!   file's size: the read's buffer and every copy of the tensors after it;
//! - `save peak`: the most memory a save holds beyond what was live before it, as a multiple of
//!   the file's size (counted by this program's allocator);
//! - `async stall`: what the training thread waits for with background saving (the snapshot
//!   handed to an idle `CheckpointWriter`), against a synchronous save.
//!
//! Medians of `TRAINER_BENCH_REPS` repetitions (default 5). `TRAINER_BENCH_SIZES=10m` skips the
//! 100M model; `TRAINER_BENCH_BACKENDS=flex` runs one backend.
//!
//! `cargo bench --bench checkpoint [--features flex]`

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
#[path = "../examples/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use counting_alloc::Counting;
use support::digits::{self, DigitsBatcher};
use support::mlp::MlpConfig;
use trainer::prelude::*;
use trainer_core::checkpoint::CheckpointWriter;
use trainer_core::engine::{SupervisedModel, SupervisedOptimizer};

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
use std::alloc::System as Inner;
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
use trainer::allocator::Jemalloc as Inner;

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_OPTIONS: &[u8; 11] = trainer::allocator::MALLOC_CONF;

/// The programs' allocator (`trainer::program_allocator!`: jemalloc on huge pages), counting.
#[global_allocator]
static ALLOCATOR: Counting<Inner> = Counting::new(Inner);

struct Size {
    name: &'static str,
    hidden: [usize; 2],
}

const SIZES: [Size; 2] = [
    // 64-2560-3840-10: 10,039,050 parameters.
    Size {
        name: "10M",
        hidden: [2560, 3840],
    },
    // 64-8192-12288-10: 101,330,954 parameters.
    Size {
        name: "100M",
        hidden: [8192, 12288],
    },
];

/// `bytes` copied once into fresh memory aligned to 16 bytes, as a decoder copies a tensor out
/// of the file's buffer.
fn copy_aligned(bytes: &[u8]) -> Vec<u128> {
    let mut copy = vec![0u128; bytes.len().div_ceil(16)];
    // SAFETY: `u128` has no invalid bit patterns and the buffer holds at least `bytes.len()`
    // bytes; the view is dropped before `copy` is returned.
    let view =
        unsafe { std::slice::from_raw_parts_mut(copy.as_mut_ptr().cast::<u8>(), bytes.len()) };
    view.copy_from_slice(bytes);
    copy
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench<B: AutodiffBackend>(backend: &str, size: &Size, reps: usize, dir: &Path) {
    let device = B::Device::default();
    let items = digits::load(digits::bundled_path()).expect("bundled digits");
    let model =
        MlpConfig::new(digits::PIXELS, size.hidden.to_vec(), digits::CLASSES).init::<B>(1, &device);
    let config = TrainerConfig::new(1e-3)
        .with_max_steps(Some(1))
        .with_batch_size(32);
    let mut trainer = SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
        .train_data(InMemDataset::new(items[..32].to_vec()), DigitsBatcher)
        .build()
        .expect("trainer");
    // One step, so that Adam holds its moments.
    trainer.fit().expect("one step");

    let path = dir.join("bench.ckpt");
    let plain = dir.join("plain.bin");
    trainer.save_checkpoint(&path).expect("save");
    let bytes = std::fs::metadata(&path).expect("checkpoint written").len();
    let raw = vec![0x5au8; bytes as usize];
    let (mut save, mut write, mut load, mut load_again, mut read, mut read_copy) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut peak, mut load_allocated) = (0usize, 0usize);
    for _ in 0..reps {
        let live = ALLOCATOR.reset_peak();
        let started = Instant::now();
        trainer.save_checkpoint(&path).expect("save");
        save.push(started.elapsed());
        peak = peak.max(ALLOCATOR.peak() - live);

        let started = Instant::now();
        let mut file = std::fs::File::create(&plain).expect("create");
        file.write_all(&raw).expect("write");
        file.sync_all().expect("fsync");
        drop(file);
        write.push(started.elapsed());

        let allocated = ALLOCATOR.allocated();
        let started = Instant::now();
        trainer.load_checkpoint(&path).expect("load");
        load.push(started.elapsed());
        load_allocated = ALLOCATOR.allocated() - allocated;

        let started = Instant::now();
        trainer.load_checkpoint(&path).expect("load");
        load_again.push(started.elapsed());

        let started = Instant::now();
        let back = std::fs::read(&path).expect("read");
        read.push(started.elapsed());
        drop(back);

        let started = Instant::now();
        let back = std::fs::read(&path).expect("read");
        let copy = copy_aligned(&back);
        read_copy.push(started.elapsed());
        drop((back, copy));
    }
    let (save, write, load, read) = (median(save), median(write), median(load), median(read));
    let (load_again, read_copy) = (median(load_again), median(read_copy));
    println!(
        "{backend:8} {:5} {:>6.0} MB | save {:7.1} ms, write+fsync {:7.1} ms, save/write {:.2} | load {:7.1} ms, read {:7.1} ms, load/read {:.2}, load again/read {:.2}, read+copy/read {:.2}, load allocates {:.2}x the file | save peak {:.2}x the file",
        size.name,
        bytes as f64 / 1e6,
        ms(save),
        ms(write),
        save.as_secs_f64() / write.as_secs_f64(),
        ms(load),
        ms(read),
        load.as_secs_f64() / read.as_secs_f64(),
        load_again.as_secs_f64() / read.as_secs_f64(),
        read_copy.as_secs_f64() / read.as_secs_f64(),
        load_allocated as f64 / bytes as f64,
        peak as f64 / bytes as f64,
    );
    async_stall(&mut trainer, dir, reps);
    let _ = std::fs::remove_file(&plain);
}

/// The training thread's stall with background saving, side by side with synchronous saves.
fn async_stall<B: AutodiffBackend, M, O, TB, VB>(
    trainer: &mut SupervisedTrainer<B, M, O, TB, VB>,
    dir: &Path,
    reps: usize,
) where
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    let writer = CheckpointWriter::new(1);
    let (mut stalls, mut syncs) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let started = Instant::now();
        let snapshot = Arc::new(trainer.snapshot().expect("snapshot"));
        let target = dir.join(format!("async-{i}.ckpt"));
        writer.submit(move || {
            snapshot.save(&target).expect("write");
            let _ = std::fs::remove_file(&target);
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
    let (stall, sync) = (median(stalls), median(syncs));
    println!(
        "{:14} async stall {stall:?}, sync save {sync:?}: stall/sync {:.5}",
        "",
        stall.as_secs_f64() / sync.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no other arguments.
    let reps = std::env::var("TRAINER_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    let only = std::env::var("TRAINER_BENCH_SIZES").unwrap_or_default();
    let backends = std::env::var("TRAINER_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |name: &str| backends.is_empty() || backends.split(',').any(|b| b == name);
    let dir = tempfile::tempdir_in(".").expect("a temporary folder on this disk");
    for size in SIZES
        .iter()
        .filter(|s| only.is_empty() || only.eq_ignore_ascii_case(s.name))
    {
        if wanted("ndarray") {
            bench::<trainer_gpu::NdArrayBackend>("ndarray", size, reps, dir.path());
        }
        #[cfg(feature = "flex")]
        if wanted("flex") {
            bench::<trainer_gpu::FlexBackend>("flex", size, reps, dir.path());
        }
    }
}
