//! `examples/job/captions.rs`: a job whose trainer reads a text column, writes
//! `classifier.safetensors` beside each checkpoint, uploads everything, and resumes with its
//! artifact checked against the restored weights.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(dir: &Path, steps: u64) -> Value {
    let output = Command::new(crate::kill_resume::example("captions"))
        .arg(dir)
        .arg(steps.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_captions_job_learns_from_text_and_writes_and_uploads_a_weight_artifact_per_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), 40);
    assert_eq!(
        (first["status"].as_str(), first["steps"].as_u64()),
        (Some("completed"), Some(40))
    );
    let checkpoints = dir.path().join("checkpoints");
    // Each kept checkpoint has its artifact: a safetensors file of the layer.
    let index: Value =
        serde_json::from_slice(&std::fs::read(checkpoints.join("index.json")).unwrap()).unwrap();
    let kept = index["checkpoints"].as_array().unwrap();
    assert_eq!(kept.len(), 2);
    for entry in kept {
        assert_eq!(
            entry["files"],
            serde_json::json!(["classifier.safetensors", "vocabulary.json"])
        );
        let file = entry["file"].as_str().unwrap();
        let folder = checkpoints.join(file.replace(".ckpt", ".artifacts"));
        let bytes = std::fs::read(folder.join("classifier.safetensors")).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(tensors.tensor("weight").unwrap().shape(), [64, 3]);
        assert_eq!(tensors.tensor("bias").unwrap().shape(), [3]);
    }

    // More steps: the job resumes at 40 (its load_checkpoint compares the artifact with the
    // restored weights and fails the job if they differ) and learns on.
    let second = run(dir.path(), 80);
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(second["steps"], 80);
    let log: Vec<Value> = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started: Vec<&Value> = log.iter().filter(|e| e["event"] == "run_started").collect();
    assert_eq!(started.len(), 2);
    assert_eq!(started[1]["resumed"], true);
    let losses: Vec<f64> = log
        .iter()
        .filter(|e| e["event"] == "metrics")
        .map(|e| e["metrics"]["loss"].as_f64().unwrap())
        .collect();
    assert!(
        losses.last().unwrap() * 4.0 < losses[0],
        "the loss falls: {losses:?}"
    );
    // Everything reached the upload folder once, with its digest.
    let manifest: Vec<Value> = std::fs::read_to_string(dir.path().join("uploaded/manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut names: Vec<&str> = manifest
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "no name twice: {names:?}");
    // 4 checkpoints (20, 40, 60, 80), each with 2 files.
    assert_eq!(count, 4 * 3, "{names:?}");
    assert!(names
        .iter()
        .any(|n| n.ends_with("step-000080.artifacts/classifier.safetensors")));
}
