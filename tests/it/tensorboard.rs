//! The example's TensorBoard files, read by the real TensorBoard's event reader (the Python
//! `tensorboard` package; `.ci/run` installs it and sets `TRAINER_PYTHON`): every scalar of
//! `events.jsonl` is there at its step with its value (rounded to TensorBoard's `f32`), and
//! nothing else, for a straight run here and for a killed-and-resumed one in `kill_resume.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use trainer::core::event::{Event, EventKind};

/// The Python with `tensorboard`, `safetensors` and `numpy`: `TRAINER_PYTHON`. Without it the
/// tests that need it say so and pass, except under CI, where its absence is a failure.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("TRAINER_PYTHON") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI must set TRAINER_PYTHON (see .ci/run)")
        }
        None => {
            eprintln!("TRAINER_PYTHON is not set: skipping the checks with Python's packages");
            None
        }
    }
}

const READ_SCALARS: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in tags["scalars"]}
print(json.dumps({"scalars": scalars, "tensors": sorted(tags["tensors"])}))
"#;

/// `(tag, step) -> f32 value` as TensorBoard reads `dir`, and its tensor tags.
fn tensorboard_scalars(python: &Path, dir: &Path) -> (BTreeMap<(String, u64), f32>, Vec<String>) {
    let output = Command::new(python)
        .arg("-c")
        .arg(READ_SCALARS)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut scalars = BTreeMap::new();
    for (tag, points) in read["scalars"].as_object().unwrap() {
        for point in points.as_array().unwrap() {
            let step = point[0].as_u64().unwrap();
            let value = point[1].as_f64().unwrap() as f32;
            assert!(
                scalars.insert((tag.clone(), step), value).is_none(),
                "{tag} twice at step {step}"
            );
        }
    }
    let tensors = read["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (scalars, tensors)
}

/// The scalars `events.jsonl` holds, as the TensorBoard file should: `(tag, step) -> value`.
fn jsonl_scalars(run_dir: &Path) -> BTreeMap<(String, u64), f32> {
    let mut scalars = BTreeMap::new();
    for line in std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .lines()
    {
        let event: Event = serde_json::from_str(line).unwrap();
        let (prefix, reading) = match &event.kind {
            EventKind::Metrics(r) | EventKind::Validation(r) => (r.split.to_string(), r),
            EventKind::Epoch(r) => ("epoch".to_string(), r),
            _ => continue,
        };
        for (name, value) in &reading.metrics {
            if let Some(value) = value {
                scalars.insert(
                    (format!("{prefix}/{name}"), event.step as u64),
                    *value as f32,
                );
            }
        }
    }
    scalars
}

/// Checks that TensorBoard reads exactly the scalars of the run's `events.jsonl`.
pub fn check_run(run_dir: &Path) {
    let Some(python) = python() else { return };
    let (tensorboard, tensors) = tensorboard_scalars(&python, &run_dir.join("tensorboard"));
    let jsonl = jsonl_scalars(run_dir);
    assert!(jsonl.len() > 20, "the run logged {} scalars", jsonl.len());
    assert_eq!(tensorboard.len(), jsonl.len(), "scalar counts differ");
    for (key, value) in &jsonl {
        assert_eq!(tensorboard.get(key), Some(value), "{key:?}");
    }
    assert!(
        tensors.contains(&"config".to_string()),
        "the config text summary: {tensors:?}"
    );
}

#[test]
fn tensorboard_reads_every_scalar_of_the_example() {
    let run_dir = std::env::temp_dir().join(format!("trainer-tensorboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let output = Command::new(crate::kill_resume::example_binary())
        .args(["--epochs", "3", "--device", "cpu", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files: Vec<_> = std::fs::read_dir(run_dir.join("tensorboard"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1, "one event file");
    check_run(&run_dir);
    std::fs::remove_dir_all(&run_dir).unwrap();
}
