//! The digits example killed with SIGKILL at random moments of a checkpointing run, rerun with
//! `--resume` each time, ends with the `weights_sha256` of a run never interrupted.
//!
//! It runs the example binary that `cargo test` builds next to the test binaries. The kill
//! times are drawn from the clock and printed, so a failure can be replayed with
//! `KILL_RESUME_DELAYS_MS=a,b,c`.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trainer::core::event::{Event, EventKind, RunStatus};

pub fn example_binary() -> PathBuf {
    example("mlp")
}

/// The example program `name`, which `cargo test` builds beside the test binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds it, or run `cargo build --example {name}`",
        path.display()
    );
    path
}

const ARGS: [&str; 6] = ["--epochs", "8", "--checkpoint-every", "7", "--seed", "5"];

fn command(run_dir: &Path, device: &str, resume: bool) -> Command {
    let (device, replicas) = device.split_once('*').unwrap_or((device, "1"));
    let mut command = Command::new(example_binary());
    command
        .args(ARGS)
        .args(["--device", device, "--replicas", replicas])
        .arg("--run-dir")
        .arg(run_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        command.arg("--resume");
    }
    command
}

/// Runs to the end and returns the final JSON line's `weights_sha256`.
fn finish(run_dir: &Path, device: &str, resume: bool) -> String {
    let mut child = command(run_dir, device, resume).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "example failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("a final JSON line");
    let result: serde_json::Value = serde_json::from_str(last).unwrap();
    let replicas = device.split_once('*').map_or("1", |(_, n)| n);
    assert_eq!(result["replicas"].to_string(), replicas, "{last}");
    result["weights_sha256"].as_str().unwrap().to_string()
}

fn events(run_dir: &Path) -> Vec<Event> {
    std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn delays(reference: Duration) -> Vec<u64> {
    if let Ok(given) = std::env::var("KILL_RESUME_DELAYS_MS") {
        return given
            .split(',')
            .map(|d| d.trim().parse().expect("milliseconds"))
            .collect();
    }
    // splitmix64 seeded by the clock: different moments on every run.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let span = reference.as_millis() as u64 + 1;
    (0..3)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % span
        })
        .collect()
}

#[test]
fn a_run_killed_at_random_moments_and_resumed_ends_with_the_same_weights() {
    kill_and_resume("ndarray");
}

#[cfg(feature = "flex")]
#[test]
fn a_run_killed_at_random_moments_and_resumed_ends_with_the_same_weights_on_flex() {
    kill_and_resume("flex");
}

#[test]
fn a_two_replica_run_killed_at_random_moments_and_resumed_ends_with_the_same_weights() {
    kill_and_resume("ndarray*2");
}

/// `device` is a `--device` value, with `*N` for N replicas.
fn kill_and_resume(device: &str) {
    let root = std::env::temp_dir().join(format!(
        "trainer-kill-resume-{}-{}",
        device.replace('*', "x"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    let started = Instant::now();
    let reference = finish(&root.join("straight"), device, false);
    let reference_time = started.elapsed();

    let run_dir = root.join("killed");
    let delays = delays(reference_time);
    eprintln!("uninterrupted run: {reference_time:?}; SIGKILL after {delays:?} ms (KILL_RESUME_DELAYS_MS to replay)");
    // One kill certain to land mid-run: as soon as the first checkpoint is named by `latest`.
    let mut child = command(&run_dir, device, true).spawn().unwrap();
    let latest_file = run_dir.join("checkpoints/latest");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !latest_file.is_file() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(Instant::now() < deadline, "no checkpoint in 300 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "SIGKILL ended the run: {status}");
    }
    for (attempt, delay) in delays.iter().enumerate() {
        let mut child = command(&run_dir, device, true).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        // `kill` sends SIGKILL; the child may already have finished.
        let killed = child.kill().is_ok();
        let status = child.wait().unwrap();
        let latest =
            std::fs::read_to_string(run_dir.join("checkpoints/latest")).unwrap_or_default();
        eprintln!(
            "attempt {attempt}: killed={killed} status={status} latest={}",
            latest.trim()
        );
    }
    let resumed = finish(&run_dir, device, true);
    assert_eq!(
        resumed, reference,
        "weights after kills at {delays:?} ms differ from the uninterrupted run"
    );
    // The event logs agree too: the same training readings, none twice, `run_ended` last.
    let readings = |dir: &Path| -> Vec<(usize, String)> {
        events(dir)
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Metrics(_) | EventKind::Validation(_)))
            .map(|e| {
                // Throughput and time metrics differ between any two runs.
                let mut metrics = e.reading().map(|r| r.metrics.clone()).unwrap_or_default();
                metrics.retain(|k, _| !trainer::core::metric::TIMING_METRICS.contains(&k.as_str()));
                (e.step, serde_json::to_string(&metrics).unwrap())
            })
            .collect()
    };
    assert_eq!(
        readings(&run_dir),
        readings(&root.join("straight")),
        "kills at {delays:?} ms"
    );
    // The example tests after `fit`: its test pass is logged after `run_ended`.
    let mut events = events(&run_dir);
    let test = events.pop().unwrap();
    assert_eq!(
        (test.name(), test.reading().map(|r| r.split)),
        ("validation", Some(trainer::prelude::Split::Test))
    );
    let last = events.pop().unwrap();
    assert!(
        matches!(
            last.kind,
            EventKind::RunEnded {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{last:?}"
    );
    // TensorBoard's reader sees the same scalars, none twice, across the kills.
    crate::tensorboard::check_run(&run_dir);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn patience_stops_the_example_early_and_says_why() {
    let output = Command::new(example_binary())
        .args([
            "--epochs",
            "40",
            "--patience",
            "1",
            "--device",
            "cpu",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(result["epochs"].as_u64().unwrap() < 40, "{result}");
    assert!(
        result["stop_reason"]
            .as_str()
            .unwrap()
            .contains("early stopping: valid/loss did not improve"),
        "{result}"
    );
    // Progress on a pipe: plain lines, no escape codes.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("epoch 1/40  train_loss") && stderr.contains("it/s eta"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes on a pipe: {stderr:?}"
    );
}
