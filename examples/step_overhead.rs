//! Runs one overhead workload once, for instruction counts:
//!
//! ```text
//! cargo build --release --example step_overhead
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/step_overhead trainer mlp_64_128_10_batch32 4
//! ```
//!
//! Arguments: `hand`, `trainer` or `setup` (data loading only, to subtract); a workload name from
//! `benches/common/workloads.rs`; how many times its steps to run.

#[path = "support/mod.rs"]
mod support;
#[path = "../benches/common/workloads.rs"]
mod workloads;

use std::process::ExitCode;

use workloads::{hand_written, through_trainer, train_items, Workload, WORKLOADS};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(variant), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("usage: step_overhead hand|trainer|setup WORKLOAD [REPEAT]");
        return ExitCode::FAILURE;
    };
    let Some(base) = WORKLOADS.iter().find(|w| w.name == name) else {
        let names: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
        eprintln!("unknown workload `{name}`; one of {names:?}");
        return ExitCode::FAILURE;
    };
    let repeat: usize = match args.get(2).map(|r| r.parse()) {
        None => 1,
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("REPEAT must be a positive integer");
            return ExitCode::FAILURE;
        }
    };
    let workload = Workload {
        steps: base.steps * repeat,
        ..*base
    };
    let items = train_items();
    match variant.as_str() {
        "hand" => println!("mean loss {}", hand_written(workload, &items)),
        "trainer" => println!("steps {}", through_trainer(workload, items)),
        "setup" => println!("items {}", items.len()),
        other => {
            eprintln!("unknown variant `{other}`: hand, trainer or setup");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
