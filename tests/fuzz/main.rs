//! Fuzzing on the stable toolchain (proptest): untrusted inputs mutated at random must end in
//! an error or a success, never in a panic, an abort, a hang or a huge allocation.
//!
//! Targets: real checkpoints mutated with the checksum fixed up (so that mutations reach the
//! payload: dtypes, shapes, byte lengths, ids, counters, strings, nesting), loaded by the
//! supervised trainer, by `trainer inspect`'s summary and by a job's state dict; job specs,
//! trainer configs and schedule configs with extreme numbers; `events.jsonl` files for
//! `trainer plot`; parquet files with damaged footers for the job feed.
//!
//! Every case runs on its own thread under a time limit ([`CASE_SECONDS`]); this binary counts
//! allocations and fails a case whose peak memory goes past a cap. `TRAINER_FUZZ_CASES` sets
//! the cases per target (CI runs [`DEFAULT_CASES`]); `docs/security.md` says how to run more.

mod alloc;
mod checkpoint;
#[path = "../../src/cli/curves.rs"]
mod curves;
// The CLI's plotting, fuzzed through `curves`; the rest of it is not used here.
mod configs;
mod events;
mod panics;
mod parquet;
#[allow(dead_code)]
#[path = "../../src/cli/plot.rs"]
mod plot;
#[path = "../../examples/support/mod.rs"]
mod support;

use std::time::Duration;

use proptest::test_runner::{Config, TestRunner};

/// Cases per target when `TRAINER_FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u32 = 64;
/// The longest one case may take.
pub const CASE_SECONDS: u64 = 60;

/// A proptest runner with the configured number of cases and no failure files (CI's clone is
/// read-only to us in spirit: a failing seed is printed instead).
pub fn runner() -> TestRunner {
    let cases = std::env::var("TRAINER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    })
}

/// Runs `case` on its own thread; a panic fails the case with its message, and so does a case
/// still running after [`CASE_SECONDS`] (a hang) or one whose allocations peaked above
/// `memory_cap` bytes.
pub fn guarded(
    what: &str,
    memory_cap: usize,
    case: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    // One case at a time across the binary's tests, so that the peak is this case's.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (done, wait) = std::sync::mpsc::channel();
    let before = alloc::reset_peak();
    std::thread::Builder::new()
        .name(format!("fuzz-{what}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case));
            let _ = done.send(outcome.map_err(|p| trainer_core::panic_message(p.as_ref())));
        })
        .map_err(|e| e.to_string())?;
    match wait.recv_timeout(Duration::from_secs(CASE_SECONDS)) {
        Ok(Ok(())) => {}
        Ok(Err(message)) => return Err(format!("{what} panicked: {message}")),
        Err(_) => return Err(format!("{what} ran past {CASE_SECONDS} s")),
    }
    let peak = alloc::peak().saturating_sub(before);
    if peak > memory_cap {
        return Err(format!(
            "{what} allocated {peak} bytes at its peak, above the cap of {memory_cap}"
        ));
    }
    Ok(())
}
