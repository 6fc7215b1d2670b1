//! `trainer run --isolate`: the step code in a child process. The same cadence and parameters
//! as in process; a child that aborts or is killed fails the job with its status, checkpoints
//! intact; with `max_restarts` the job completes with the uninterrupted job's parameters.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use trainer::job::JobPayload;
use trainer_core::checkpoint::{latest_in, read};

use crate::job::{events, long_spec, stderr, steps_of, tensors, trainer, wait_for_event};

fn faulty_runner() -> Command {
    let mut command = Command::new(crate::kill_resume::example("faulty_runner"));
    command.env_remove("TRAINER_DEVICE");
    command
}

/// The example job for `steps` steps, checkpoints every 10, with `change` applied.
fn spec(dir: &Path, name: &str, steps: usize, change: impl FnOnce(&mut Value)) -> PathBuf {
    let path = long_spec(dir, steps);
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["checkpoint_every"] = json!(10);
    change(&mut spec);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

/// Each event's name and step (and file), without times or metric values: the checkpoint
/// events apart, since each comes when its background write is done, a step or two later.
type Shape = Vec<(String, u64, Option<String>)>;

fn shape(log: &[Value]) -> (Shape, Shape) {
    log.iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["step"].as_u64().unwrap(),
                e["file"].as_str().map(str::to_string),
            )
        })
        .partition(|(event, ..)| event != "checkpoint")
}

#[test]
fn an_isolated_job_runs_like_the_same_job_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "plain", 45, |_| {});
    let run = |name: &str, isolate: bool| {
        let run_dir = dir.path().join(name);
        let mut command = trainer();
        command
            .args(["run", "--spec"])
            .arg(&spec)
            .arg("--run-dir")
            .arg(&run_dir);
        if isolate {
            command.arg("--isolate");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        run_dir
    };
    let inside = run("inside", false);
    let isolated = run("isolated", true);
    let contract: Value = serde_json::from_str(
        &std::fs::read_to_string(isolated.join("isolate/contract.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(contract["contract_version"], "v1");
    assert_eq!(contract["trainer_plugin"], "mlp-classifier");
    assert!(Path::new(contract["arrow_ipc_path"].as_str().unwrap()).is_file());
    let (a, b) = (
        events(&inside.join("events.jsonl")),
        events(&isolated.join("events.jsonl")),
    );
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(steps_of(&b, "checkpoint"), [10, 20, 30, 40, 45]);
    assert_eq!(
        tensors(&inside.join("checkpoints")),
        tensors(&isolated.join("checkpoints")),
        "isolated, other parameters"
    );
    // Metric means: the same values, summed on the host in the child's case (within f32
    // rounding of the device sums in process).
    let losses = |log: &[Value]| -> Vec<f64> {
        log.iter()
            .filter(|e| e["event"] == "metrics")
            .map(|e| e["metrics"]["loss"].as_f64().unwrap())
            .collect()
    };
    let (x, y) = (losses(&a), losses(&b));
    assert_eq!(x.len(), 5);
    for (x, y) in x.iter().zip(&y) {
        assert!((x - y).abs() <= 1e-6 * x.abs(), "loss {x} vs {y}");
    }
}

/// The pids of `parent`'s children.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn a_child_that_aborts_or_is_killed_fails_the_job_with_its_status_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Aborts at step 25: the checkpoint of step 20 stays.
    let aborting = spec(dir.path(), "abort", 60, |s| {
        s["trainer"] = json!("mlp-faulty");
        s["hyperparams"]["fault"] = json!({"at_step": 25, "kind": "abort"});
    });
    let run = dir.path().join("abort");
    let output = faulty_runner()
        .args(["--isolate", "--spec"])
        .arg(&aborting)
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = events(&run.join("events.jsonl"));
    let last = log.last().unwrap();
    assert_eq!(last["status"], "failed");
    let reason = last["reason"].as_str().unwrap();
    assert!(reason.contains("signal 6 (SIGABRT)"), "{reason}");
    assert_eq!(steps_of(&log, "checkpoint"), [10, 20]);
    let payload: JobPayload = read(&latest_in(&run.join("checkpoints")).unwrap().unwrap()).unwrap();
    assert_eq!(payload.state.global_step, 20);

    // A panic in the child: the process exits with 101.
    let panicking = spec(dir.path(), "panic", 60, |s| {
        s["trainer"] = json!("mlp-faulty");
        s["hyperparams"]["fault"] = json!({"at_step": 15, "kind": "panic"});
    });
    let run = dir.path().join("panic");
    let output = faulty_runner()
        .args(["--isolate", "--spec"])
        .arg(&panicking)
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let log = events(&run.join("events.jsonl"));
    let reason = log.last().unwrap()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("exited with status 101"), "{reason}");
    assert!(
        stderr(&output).contains("the fault at step 15"),
        "the child's panic message reaches stderr"
    );
    assert_eq!(steps_of(&log, "checkpoint"), [10]);

    // SIGKILL to the child of a long job, once it has checkpointed.
    let long = spec(dir.path(), "long", 200_000, |s| {
        s["checkpoint_every"] = json!(50);
    });
    let run = dir.path().join("killed");
    let mut parent = trainer()
        .args(["run", "--isolate", "--spec"])
        .arg(&long)
        .arg("--run-dir")
        .arg(&run)
        .spawn()
        .unwrap();
    wait_for_event(&run.join("events.jsonl"), "checkpoint");
    let kids = children(parent.id());
    assert_eq!(kids.len(), 1, "one trainer process: {kids:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", kids[0])).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("--isolate"));
    assert_eq!(unsafe { libc::kill(kids[0] as i32, libc::SIGKILL) }, 0);
    let status = parent.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let log = events(&run.join("events.jsonl"));
    let last = log.last().unwrap();
    assert_eq!(last["status"], "failed");
    let reason = last["reason"].as_str().unwrap();
    assert!(reason.contains("signal 9 (SIGKILL)"), "{reason}");
    let saved = steps_of(&log, "checkpoint");
    assert!(!saved.is_empty());
    let payload: JobPayload = read(&latest_in(&run.join("checkpoints")).unwrap().unwrap()).unwrap();
    assert_eq!(payload.state.global_step as u64, *saved.last().unwrap());
}

#[test]
fn with_max_restarts_a_job_whose_child_aborts_completes_with_the_uninterrupted_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("aborted-once");
    let restarting = spec(dir.path(), "restart", 60, |s| {
        s["trainer"] = json!("mlp-faulty");
        s["max_restarts"] = json!(1);
        s["hyperparams"]["fault"] = json!({"at_step": 25, "kind": "abort", "once_marker": marker});
    });
    let run = dir.path().join("restart");
    let output = faulty_runner()
        .args(["--isolate", "--spec"])
        .arg(&restarting)
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(marker.exists(), "the child really aborted once");
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        line["restarts"],
        json!(["was killed by signal 6 (SIGABRT)"])
    );
    // The resumed session drops the events after its checkpoint (the failed end among them),
    // as any resume does: the file reads as one run.
    let log = events(&run.join("events.jsonl"));
    let ended: Vec<&str> = log
        .iter()
        .filter(|e| e["event"] == "run_ended")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(ended, ["completed"]);
    let started: Vec<&Value> = log.iter().filter(|e| e["event"] == "run_started").collect();
    assert_eq!(started.len(), 2);
    let restarted = started[1];
    assert_eq!(
        (restarted["resumed"].as_bool(), restarted["step"].as_u64()),
        (Some(true), Some(20))
    );

    // The same job without the fault, in process.
    let plain = spec(dir.path(), "plain", 60, |s| {
        s["trainer"] = json!("mlp-faulty")
    });
    let straight = dir.path().join("straight");
    let output = faulty_runner()
        .arg("--spec")
        .arg(&plain)
        .arg("--run-dir")
        .arg(&straight)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        tensors(&run.join("checkpoints")),
        tensors(&straight.join("checkpoints")),
        "restarted after an abort: other parameters"
    );
}
