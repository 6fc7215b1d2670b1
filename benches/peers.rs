//! The trainer against its peers, side by side in one run: workloads A (the digits MLP 64-128-10,
//! batch 32, 20 epochs with validation) and B (MLP 784-512-512-10, batch 256, 300 steps) through
//! `SupervisedTrainer`, a hand-written burn loop and burn-train 0.21's `Learner`, on each CPU
//! backend compiled in (ndarray; flex with `--features flex`), and through PyTorch and PyTorch
//! Lightning (`benches/peers.py`) when the Python that `TRAINER_PYTHON` names (else `python3`)
//! has `torch`. Every runner uses 2 threads.
//!
//! Prints the median steps per second of `TRAINER_BENCH_REPS` runs (default 3) and the ratios to
//! the hand-written loop on the same backend and to PyTorch's hand loop.
//!
//! `cargo bench --bench peers --features flex`

#[path = "../examples/support/mod.rs"]
mod support;

#[path = "peers/data.rs"]
mod data;
#[path = "peers/hand.rs"]
mod hand;
#[path = "peers/learner.rs"]
mod learner;
#[path = "peers/ours.rs"]
mod ours;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use data::{Data, Workload};

trainer::program_allocator!();

/// Steps per second of each (workload, runner).
type Table = BTreeMap<(&'static str, String), f64>;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn measure(reps: usize, mut run: impl FnMut() -> usize) -> f64 {
    // One run unmeasured: thread pools, allocator arenas and caches warm up.
    run();
    median(
        (0..reps)
            .map(|_| {
                let started = Instant::now();
                let steps = run();
                steps as f64 / started.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn backend<B: AutodiffBackend>(
    name: &str,
    workloads: &[(Workload, Data)],
    reps: usize,
    table: &mut Table,
) {
    let device = B::Device::default();
    for (w, data) in workloads {
        let steps = w.steps(data.train.len());
        let hand = measure(reps, || hand::run::<B>(*w, data, &device).0);
        let ours = measure(reps, || ours::run::<B>(*w, data, &device).0);
        let learner = measure(reps, || learner::run::<B>(*w, data, &device));
        for (runner, value) in [
            ("hand-written burn loop", hand),
            ("SupervisedTrainer", ours),
            ("burn-train Learner", learner),
        ] {
            table.insert((w.name, format!("{runner} ({name})")), value);
        }
        eprintln!("{name} {}: {steps} steps, trainer {ours:.1}/s, hand {hand:.1}/s, learner {learner:.1}/s", w.name);
    }
}

/// Runs `benches/peers.py` on the same data; its lines are `workload<TAB>runner<TAB>steps/s`.
fn python(workloads: &[(Workload, Data)], reps: usize, table: &mut Table) {
    let python = std::env::var("TRAINER_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!("{python} has no torch: the PyTorch columns are left out");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut args = vec![format!("--reps={reps}")];
    for (w, data) in workloads {
        let train = dir.path().join(format!("{}-train.bin", w.name));
        let valid = dir.path().join(format!("{}-valid.bin", w.name));
        data::write_raw(&data.train, &train).expect("data written");
        data::write_raw(&data.valid, &valid).expect("data written");
        let hidden: Vec<String> = w.hidden.iter().map(usize::to_string).collect();
        args.push(format!(
            "{}:{}:{}:{}:{}:{}:{}:{}:{}",
            w.name,
            w.inputs,
            hidden.join(","),
            w.batch,
            w.epochs,
            data.train.len(),
            data.valid.len(),
            train.display(),
            valid.display()
        ));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers.py");
    let output = Command::new(&python)
        .arg(script)
        .args(&args)
        .output()
        .expect("python runs");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [workload, runner, value] = fields[..] {
            let workload = if workload == "A" { "A" } else { "B" };
            table.insert(
                (workload, runner.to_string()),
                value.parse().unwrap_or(f64::NAN),
            );
        }
    }
}

fn main() {
    let reps = std::env::var("TRAINER_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let workloads: Vec<(Workload, Data)> = [data::A, data::B]
        .into_iter()
        .map(|w| (w, w.data()))
        .collect();
    let mut table = Table::new();
    backend::<trainer_gpu::NdArrayBackend>("ndarray", &workloads, reps, &mut table);
    #[cfg(feature = "flex")]
    backend::<trainer_gpu::FlexBackend>("flex", &workloads, reps, &mut table);
    python(&workloads, reps, &mut table);

    println!("| runner | A steps/s | B steps/s | A / hand loop | B / hand loop | A / PyTorch | B / PyTorch |");
    println!("|---|---|---|---|---|---|---|");
    let runners: Vec<String> = {
        let mut names: Vec<String> = table.keys().map(|(_, r)| r.clone()).collect();
        names.dedup();
        names.sort();
        names.dedup();
        names
    };
    let get = |w: &'static str, r: &str| table.get(&(w, r.to_string())).copied();
    for runner in &runners {
        let hand = runner
            .rfind(" (")
            .map(|i| format!("hand-written burn loop{}", &runner[i..]));
        let ratio = |w: &'static str, base: Option<f64>| match (get(w, runner), base) {
            (Some(v), Some(b)) => format!("{:.2}", v / b),
            _ => "-".into(),
        };
        let cell = |w: &'static str| get(w, runner).map_or("-".into(), |v| format!("{v:.1}"));
        let hand_a = hand.as_deref().and_then(|h| get("A", h));
        let hand_b = hand.as_deref().and_then(|h| get("B", h));
        println!(
            "| {runner} | {} | {} | {} | {} | {} | {} |",
            cell("A"),
            cell("B"),
            ratio("A", hand_a),
            ratio("B", hand_b),
            ratio("A", get("A", "PyTorch hand loop")),
            ratio("B", get("B", "PyTorch hand loop")),
        );
    }
}
