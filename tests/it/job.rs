//! `trainer run` end to end on the example job: cadence of events, SIGTERM and an exact
//! resume, and the exit statuses of bad specs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trainer::job::JobPayload;
use trainer_core::checkpoint::{latest_in, read};

pub(crate) fn trainer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    for var in [
        "TRAINER_JOB_SPEC_PATH",
        "TRAINER_PLUGIN",
        "TRAINER_CHECKPOINTS_DIR",
        "TRAINER_SAMPLES_DIR",
        "TRAINER_EVENTS_PATH",
        "TRAINER_CANCEL_PATH",
        "TRAINER_DEVICE",
        "TRAINER_REPLICA_DEVICES",
    ] {
        command.env_remove(var);
    }
    command
}

pub(crate) fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/job")
}

pub(crate) fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn steps_of(events: &[Value], kind: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["step"].as_u64().unwrap())
        .collect()
}

/// Waits (120 s at most) until the events file at `path` holds an event of `kind`.
pub(crate) fn wait_for_event(path: &Path, kind: &str) {
    let started = Instant::now();
    let needle = format!("\"event\":\"{kind}\"");
    while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(&needle)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no {kind} event in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_example_job_emits_metrics_checkpoints_and_samples_on_cadence() {
    let run = tempfile::tempdir().unwrap();
    let output = trainer()
        .args(["run", "--spec"])
        .arg(example_dir().join("spec.json"))
        .arg("--run-dir")
        .arg(run.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (line["status"].as_str(), line["step"].as_u64()),
        (Some("completed"), Some(600))
    );
    let log = events(&run.path().join("events.jsonl"));
    assert_eq!(log[0]["event"], "run_started");
    assert_eq!(log[0]["config"]["job"]["trainer_api_version"], "v1");
    assert_eq!(
        steps_of(&log, "metrics"),
        (1..=12).map(|i| i * 50).collect::<Vec<_>>()
    );
    assert_eq!(steps_of(&log, "checkpoint"), [200, 400, 600]);
    assert_eq!(steps_of(&log, "sample"), [300, 600]);
    let last = log.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["status"].as_str()),
        (Some("run_ended"), Some("completed"))
    );
    // It learns: the last window's accuracy on the training batches.
    let accuracy = log.iter().rev().find(|e| e["event"] == "metrics").unwrap()["metrics"]
        ["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy > 0.9, "{accuracy}");
    // `trainer inspect` reads job checkpoints: the state dict holds the model (64-64-10: 4810
    // parameters in 4 tensors) and Adam's two moments of each, at 4 bytes a value.
    let output = trainer()
        .args(["inspect", "--json"])
        .arg(run.path().join("checkpoints"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (
            summary["module_tensors"].as_u64(),
            summary["module_tensor_bytes"].as_u64()
        ),
        (Some(12), Some(4810 * 4 * 3)),
        "{summary}"
    );
    for step in [200, 400, 600] {
        assert!(run.path().join("checkpoints").read_dir().unwrap().any(|f| f
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(&format!("step-{step:06}"))));
    }
}

/// The example job's spec with a constant lr, `max_steps` steps, data path made absolute.
pub(crate) fn long_spec(dir: &Path, max_steps: usize) -> PathBuf {
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(example_dir().join("spec.json")).unwrap())
            .unwrap();
    spec["max_steps"] = json!(max_steps);
    spec["metric_every"] = json!(10);
    spec["checkpoint_every"] = json!(1000);
    spec.as_object_mut().unwrap().remove("sample_every");
    spec["hyperparams"]
        .as_object_mut()
        .unwrap()
        .remove("lr_schedule");
    spec["dataset"]["parquet_paths"] = json!([example_dir().join("digits.parquet")]);
    let path = dir.join(format!("spec-{max_steps}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

/// The example job of `max_steps` with two replicas in one process.
pub(crate) fn replica_spec(dir: &Path, max_steps: usize) -> PathBuf {
    let plain = long_spec(dir, max_steps);
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(plain).unwrap()).unwrap();
    spec["replicas"] = json!(2);
    let path = dir.join(format!("replicas-{max_steps}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

/// `trainer run --spec SPEC --run-dir RUN`, to its end.
pub(crate) fn run_spec(spec: &Path, run: &Path) -> Output {
    trainer()
        .args(["run", "--spec"])
        .arg(spec)
        .arg("--run-dir")
        .arg(run)
        .output()
        .unwrap()
}

/// The largest difference between two lists of little-endian `f32` tensors.
pub(crate) fn max_difference(a: &[Vec<u8>], b: &[Vec<u8>]) -> f32 {
    let floats = |tensors: &[Vec<u8>]| -> Vec<f32> {
        tensors
            .iter()
            .flat_map(|bytes| bytes.chunks_exact(4))
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let (a, b) = (floats(a), floats(b));
    assert_eq!(a.len(), b.len(), "tensors of other sizes");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// The model's tensors in order and the optimizer's sorted (keyed by parameter ids).
pub(crate) fn tensors(checkpoint_dir: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let payload: JobPayload = read(&latest_in(checkpoint_dir).unwrap().unwrap()).unwrap();
    let (model, mut optimizer) = (
        payload.module.tensor_bytes("model").unwrap(),
        payload.module.tensor_bytes("optimizer").unwrap(),
    );
    // Two layers' weights and biases, and Adam's two moments of each.
    assert!(
        model.len() == 4 && optimizer.len() >= 8,
        "expected the tensors of two layers and their moments"
    );
    optimizer.sort();
    (model, optimizer)
}

#[cfg(unix)]
#[test]
fn sigterm_cancels_with_a_checkpoint_and_the_rerun_ends_like_an_uninterrupted_job() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = trainer()
        .args(["run", "--spec"])
        .arg(long_spec(dir.path(), 200_000))
        .arg("--run-dir")
        .arg(&run)
        .spawn()
        .unwrap();
    let events_path = run.join("events.jsonl");
    // Wait until it trains (a metrics event), then SIGTERM.
    wait_for_event(&events_path, "metrics");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "cancelled jobs exit with 130");
    let log = events(&events_path);
    let last = log.last().unwrap();
    assert_eq!(last["status"], "cancelled", "{last}");
    let cut = last["step"].as_u64().unwrap() as usize;
    assert!(cut > 0 && cut < 200_000);
    let payload: JobPayload = read(&latest_in(&run.join("checkpoints")).unwrap().unwrap()).unwrap();
    assert_eq!(
        payload.state.global_step, cut,
        "the checkpoint is at the step reached"
    );
    assert_eq!(
        steps_of(&log, "checkpoint").last().copied(),
        Some(cut as u64)
    );

    // The rerun resumes there and runs on to `end`; a job never interrupted ends the same.
    let end = cut + 37;
    let output = trainer()
        .args(["run", "--spec"])
        .arg(long_spec(dir.path(), end))
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = events(&events_path);
    let restart = log
        .iter()
        .rposition(|e| e["event"] == "run_started")
        .unwrap();
    assert_eq!(
        (
            log[restart]["resumed"].as_bool(),
            log[restart]["step"].as_u64()
        ),
        (Some(true), Some(cut as u64))
    );
    assert_eq!(log.last().unwrap()["status"], "completed");
    let straight = dir.path().join("straight");
    let output = trainer()
        .args(["run", "--spec"])
        .arg(long_spec(dir.path(), end))
        .arg("--run-dir")
        .arg(&straight)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        tensors(&run.join("checkpoints")),
        tensors(&straight.join("checkpoints")),
        "cancelled at step {cut} and resumed: other parameters"
    );
}

#[test]
fn bad_specs_and_unknown_trainers_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let spec = long_spec(dir.path(), 10);
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    value["dataset"]["batch_size"] = json!(0);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, value.to_string()).unwrap();
    let output = trainer()
        .args(["run", "--spec"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("dataset.batch_size"),
        "{}",
        stderr(&output)
    );
    value["dataset"]["batch_size"] = json!(8);
    value["trainer_api_version"] = json!("v9");
    std::fs::write(&bad, value.to_string()).unwrap();
    let output = trainer()
        .args(["run", "--spec"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("\"v9\"") && stderr(&output).contains("v1"),
        "{}",
        stderr(&output)
    );
    // TRAINER_PLUGIN overrides the spec's trainer; an unknown one names the registered ones.
    let output = trainer()
        .args(["run", "--run-dir"])
        .arg(dir.path().join("r"))
        .env("TRAINER_JOB_SPEC_PATH", &spec)
        .env("TRAINER_PLUGIN", "gan")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("\"gan\"") && stderr(&output).contains("mlp-classifier"),
        "{}",
        stderr(&output)
    );
    // Bad data fails the job: a `failed` event, exit 1.
    value["trainer_api_version"] = json!("v1");
    value["dataset"]["parquet_paths"] = json!([spec.clone()]);
    std::fs::write(&bad, value.to_string()).unwrap();
    let run = dir.path().join("bad-data");
    let output = trainer()
        .args(["run", "--spec"])
        .arg(&bad)
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let last = events(&run.join("events.jsonl")).pop().unwrap();
    assert_eq!(last["status"], "failed");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("not a readable parquet file"),
        "{last}"
    );
}
