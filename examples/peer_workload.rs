//! Runs one workload of `benches/peers.rs` once through one runner, for profilers:
//!
//! ```text
//! cargo build --release --features flex --example peer_workload
//! perf record -F 999 --call-graph dwarf,32768 -o perf.data \
//!     target/release/examples/peer_workload trainer B flex
//! perf script -i perf.data | inferno-collapse-perf | inferno-flamegraph > profile.svg
//! ```
//!
//! Arguments: `trainer` or `hand`; `A` or `B`; `ndarray` or `flex` (with `--features flex`);
//! optionally how many times the workload's epochs to run (default 1). Prints the steps per
//! second.

#[path = "support/mod.rs"]
mod support;

#[path = "../benches/peers/data.rs"]
mod data;
#[path = "../benches/peers/hand.rs"]
mod hand;
#[path = "../benches/peers/ours.rs"]
mod ours;

use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

trainer::program_allocator!();

fn run<B: AutodiffBackend>(runner: &str, w: data::Workload) -> usize {
    let data = w.data();
    let device = B::Device::default();
    if runner == "hand" {
        hand::run::<B>(w, &data, &device).0
    } else {
        ours::run::<B>(w, &data, &device).0
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: peer_workload trainer|hand A|B ndarray|flex [EPOCH_FACTOR]";
    let (Some(runner), Some(workload), Some(backend)) = (args.first(), args.get(1), args.get(2))
    else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut w = match workload.as_str() {
        "A" => data::A,
        "B" => data::B,
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let Ok(factor) = args.get(3).map_or(Ok(1), |f| f.parse::<usize>()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    w.epochs *= factor.clamp(1, 1000);
    if !matches!(runner.as_str(), "trainer" | "hand") {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let steps = match backend.as_str() {
        "ndarray" => run::<trainer_gpu::NdArrayBackend>(runner, w),
        #[cfg(feature = "flex")]
        "flex" => run::<trainer_gpu::FlexBackend>(runner, w),
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{runner} {workload} {backend}: {steps} steps, {:.1} steps/s",
        steps as f64 / started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
