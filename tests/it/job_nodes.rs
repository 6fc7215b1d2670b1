//! A distributed job: `trainer orchestrator` and two `trainer run` nodes of the example job on
//! 127.0.0.1, each with its shard of the data. Both end with the same model and optimizer
//! state, a SIGTERM to one node cancels both at the same step, and a resume with another node
//! count is refused. One process with two replicas ends with the two nodes' state.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use trainer::job::JobPayload;
use trainer_core::checkpoint::{latest_in, read};

use crate::job::{
    events, long_spec, max_difference, replica_spec, run_spec, stderr, tensors, trainer,
    wait_for_event,
};
use crate::nodes::{free_port, wait, Orchestrator};

/// The example job of `max_steps`, as node `rank` of 2 meeting at `orchestrator`.
fn node_spec(dir: &Path, max_steps: usize, orchestrator: &str, rank: usize) -> PathBuf {
    node_spec_of(long_spec(dir, max_steps), orchestrator, rank)
}

/// `plain` as node `rank` of 2 meeting at `orchestrator`.
fn node_spec_of(plain: PathBuf, orchestrator: &str, rank: usize) -> PathBuf {
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&plain).unwrap()).unwrap();
    spec["distributed"] = json!({
        "nodes": 2,
        "node_rank": rank,
        "orchestrator": orchestrator,
        "node_address": format!("ws://127.0.0.1:{}", free_port()),
        "timeout_seconds": 60,
    });
    let path = plain.with_file_name(format!(
        "node-{rank}-{}",
        plain.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

#[test]
fn two_nodes_of_two_replicas_agree_with_each_other_and_with_four_replicas_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ends) = two_nodes(dir.path(), replica_spec(dir.path(), 60));
    // Four replicas in one process take the same batches; their all-reduce sums in another
    // order (a tree of four against two of two), so the models agree to rounding.
    let mut four: Value =
        serde_json::from_str(&std::fs::read_to_string(replica_spec(dir.path(), 60)).unwrap())
            .unwrap();
    four["replicas"] = json!(4);
    let four_spec = dir.path().join("four.json");
    std::fs::write(&four_spec, four.to_string()).unwrap();
    let alone = dir.path().join("four");
    let output = run_spec(&four_spec, &alone);
    assert!(output.status.success(), "{}", stderr(&output));
    let worst = max_difference(&ends[0].0, &tensors(&alone.join("checkpoints")).0);
    assert!(worst < 1e-5, "2 nodes × 2 and 1 × 4 differ by {worst}");
}

#[test]
fn replica_devices_that_do_not_match_the_spec_are_refused_before_the_job_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, devices, expected) in [
        (replica_spec(dir.path(), 10), "cpu,cpu", "2 device(s) given"),
        (long_spec(dir.path(), 10), "cpu", "1 device(s) given"),
        (replica_spec(dir.path(), 10), "tpu", "--replica-devices"),
    ] {
        let run = dir.path().join("run");
        let output = trainer()
            .args(["run", "--spec"])
            .arg(&spec)
            .arg("--run-dir")
            .arg(&run)
            .args(["--replica-devices", devices])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{devices}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{devices}: {}",
            stderr(&output)
        );
        assert!(
            !run.join("checkpoints").exists(),
            "{devices}: nothing trained"
        );
    }
}

/// A checkpoint's model and optimizer tensors (`crate::job::tensors`).
type Tensors = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The nodes' run folders and final tensors of `plain` run as two nodes (`trainer
/// orchestrator` and two `trainer run` under `dir`), checked equal on both.
fn two_nodes(dir: &Path, plain: PathBuf) -> ([PathBuf; 2], [Tensors; 2]) {
    let orchestrator = Orchestrator::start();
    let runs = [0, 1].map(|rank| dir.join(format!("run-{rank}")));
    let children = [0, 1].map(|rank| {
        let spec = node_spec_of(plain.clone(), &orchestrator.url(), rank);
        start_node(&spec, &runs[rank])
    });
    for child in children {
        let output = wait(child, Duration::from_secs(120));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let ends = runs.clone().map(|run| tensors(&run.join("checkpoints")));
    assert!(ends[0] == ends[1], "the nodes' states differ");
    (runs, ends)
}

fn start_node(spec: &Path, run: &Path) -> Child {
    trainer()
        .args(["run", "--spec"])
        .arg(spec)
        .arg("--run-dir")
        .arg(run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_job_nodes_end_with_the_same_state_and_a_resume_with_one_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Each node trained on its half of every epoch: only the average of both halves' gradients
    // at every step gives both the same model and the same Adam moments.
    let (runs, ends) = two_nodes(dir.path(), long_spec(dir.path(), 120));
    // One process with two replicas (threads) takes the same batches with the same seeds: the
    // same state, bit for bit.
    let replicas = dir.path().join("replicas");
    let output = run_spec(&replica_spec(dir.path(), 120), &replicas);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        tensors(&replicas.join("checkpoints")) == ends[0],
        "two replicas in one process differ from two nodes"
    );
    // One machine over all the batches is another run.
    let alone = dir.path().join("alone");
    let output = run_spec(&long_spec(dir.path(), 120), &alone);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(tensors(&alone.join("checkpoints")).0 != ends[0].0);
    // A node's checkpoint resumed by a job without `distributed`: refused, not trained on.
    let output = run_spec(&long_spec(dir.path(), 200), &runs[0]);
    assert!(!output.status.success());
    let log = events(&runs[0].join("events.jsonl"));
    let reason = log.last().unwrap()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("distributed.nodes"), "{reason}");
    let payload: JobPayload =
        read(&latest_in(&runs[0].join("checkpoints")).unwrap().unwrap()).unwrap();
    assert_eq!(payload.state.global_step, 120);
}

#[test]
fn a_sigterm_to_one_node_cancels_both_at_the_same_step() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Orchestrator::start();
    let runs = [0, 1].map(|rank| dir.path().join(format!("run-{rank}")));
    let children = [0, 1].map(|rank| {
        let spec = node_spec(dir.path(), 200_000, &orchestrator.url(), rank);
        start_node(&spec, &runs[rank])
    });
    // Both train (a metrics event each), then node 0 alone gets SIGTERM.
    for run in &runs {
        wait_for_event(&run.join("events.jsonl"), "metrics");
    }
    assert_eq!(
        unsafe { libc::kill(children[0].id() as i32, libc::SIGTERM) },
        0
    );
    let outputs = children.map(|child| wait(child, Duration::from_secs(60)));
    let mut steps = Vec::new();
    for (rank, output) in outputs.iter().enumerate() {
        assert_eq!(
            output.status.code(),
            Some(130),
            "node {rank}: {}",
            stderr(output)
        );
        let log = events(&runs[rank].join("events.jsonl"));
        let last = log.last().unwrap();
        assert_eq!(last["status"], "cancelled", "node {rank}: {last}");
        steps.push(last["step"].as_u64().unwrap());
    }
    let reason = events(&runs[1].join("events.jsonl")).last().unwrap()["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("another node"),
        "{reason}"
    );
    assert_eq!(steps[0], steps[1]);
    assert!(steps[0] > 0 && steps[0] < 200_000);
    assert!(
        tensors(&runs[0].join("checkpoints")) == tensors(&runs[1].join("checkpoints")),
        "the nodes' final checkpoints differ"
    );
}
