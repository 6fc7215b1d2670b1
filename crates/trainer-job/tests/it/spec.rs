//! Job spec validation: every bad field is named, unknown versions and fields are refused, and
//! the settings follow flag > environment > spec/default.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use trainer_job::{JobError, JobSpec, RunOptions};

fn valid() -> Value {
    json!({
        "trainer_api_version": "v1",
        "run_id": "run-1",
        "trainer": "mlp-classifier",
        "max_steps": 10,
        "metric_every": 2,
        "checkpoint_every": 5,
        "seed": 3,
        "hyperparams": {"learning_rate": 0.01, "lr_schedule": {"scheduler": "StepLR", "params": {"step_size": 2, "gamma": 0.5}}},
        "dataset": {"parquet_paths": ["a.parquet"], "batch_size": 4, "columns": ["x", "label"]}
    })
}

fn parse(value: &Value) -> Result<JobSpec, JobError> {
    JobSpec::parse(&value.to_string(), "test.json")
}

/// Applies `change` to a valid spec and returns the error's field and message.
fn field_error(change: impl FnOnce(&mut Value)) -> (String, String) {
    let mut spec = valid();
    change(&mut spec);
    match parse(&spec) {
        Err(JobError::Spec {
            field,
            message,
            origin,
        }) => {
            assert_eq!(origin, "test.json");
            (field, message)
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn a_valid_spec_parses_with_defaults() {
    let spec = parse(&valid()).unwrap();
    assert_eq!(spec.dataset.readahead, 4);
    assert_eq!(spec.sample_every, None);
    assert_eq!(spec.learning_rate(), 0.01);
    assert!(spec.schedule_config("t").unwrap().is_some());
}

#[test]
fn each_bad_field_is_named() {
    // (change to a valid spec, the field the error must name, a phrase its message must hold)
    type Case = (Box<dyn FnOnce(&mut Value)>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            Box::new(|s| s["max_steps"] = json!(0)),
            "max_steps",
            "at least 1",
        ),
        (
            Box::new(|s| s["max_steps"] = json!("ten")),
            "max_steps",
            "invalid type",
        ),
        (
            Box::new(|s| s["metric_every"] = json!(0)),
            "metric_every",
            "at least 1",
        ),
        (
            Box::new(|s| s["checkpoint_every"] = json!(-1)),
            "checkpoint_every",
            "invalid value",
        ),
        (
            Box::new(|s| s["sample_every"] = json!(0)),
            "sample_every",
            "at least 1",
        ),
        (
            Box::new(|s| s["run_id"] = json!("a/b")),
            "run_id",
            "letters",
        ),
        (Box::new(|s| s["run_id"] = json!("")), "run_id", "letters"),
        (
            Box::new(|s| s["trainer"] = json!("")),
            "trainer",
            "registered",
        ),
        (Box::new(|s| s["seed"] = json!(1.5)), "seed", "invalid type"),
        (
            Box::new(|s| s["dataset"]["batch_size"] = json!(0)),
            "dataset.batch_size",
            "at least 1",
        ),
        (
            Box::new(|s| s["dataset"]["batch_size"] = json!("4")),
            "dataset.batch_size",
            "invalid type",
        ),
        (
            Box::new(|s| s["dataset"]["readahead"] = json!(0)),
            "dataset.readahead",
            "at least 1",
        ),
        (
            Box::new(|s| s["dataset"]["readahead"] = json!(1_000_000_000_000u64)),
            "dataset.readahead",
            "at most 1024",
        ),
        (
            Box::new(|s| s["dataset"]["batch_size"] = json!(1u64 << 40)),
            "dataset.batch_size",
            "at most",
        ),
        (
            Box::new(|s| s["dataset"]["columns"] = json!([])),
            "dataset.columns",
            "at least one",
        ),
        (
            Box::new(|s| s["dataset"]["columns"] = json!(["x", "x"])),
            "dataset.columns",
            "twice",
        ),
        (
            Box::new(|s| s["dataset"]["parquet_paths"] = json!([])),
            "dataset.parquet_paths",
            "mock_batches",
        ),
        (
            Box::new(|s| s["dataset"]["parquet_paths"] = json!("a.parquet")),
            "dataset.parquet_paths",
            "invalid type",
        ),
        (
            Box::new(|s| s["mock_batches"] = json!(0)),
            "mock_batches",
            "at least 1",
        ),
        (
            Box::new(|s| s["keep_checkpoints"] = json!(0)),
            "keep_checkpoints",
            "at least 1",
        ),
        (
            Box::new(|s| s["hyperparams"] = json!([1])),
            "hyperparams",
            "object",
        ),
        (
            Box::new(|s| s["hyperparams"]["learning_rate"] = json!(-1)),
            "hyperparams.learning_rate",
            "finite number",
        ),
        (
            Box::new(|s| s["hyperparams"]["lr_schedule"] = json!({"scheduler": "NoSuchLR"})),
            "hyperparams.lr_schedule",
            "NoSuchLR",
        ),
        (
            Box::new(|s| {
                s["hyperparams"]["lr_schedule"] =
                    json!({"scheduler": "StepLR", "params": {"step_size": 0}})
            }),
            "hyperparams.lr_schedule",
            "step_size",
        ),
        (
            Box::new(|s| s["hyperparams"]["lr_schedule_monitor"] = json!("loss")),
            "hyperparams.lr_schedule_monitor",
            "only by a plateau schedule",
        ),
        (
            Box::new(|s| {
                s["hyperparams"]["lr_schedule"] =
                    json!({"scheduler": "ReduceLROnPlateau", "params": {}});
                s["hyperparams"]["lr_schedule_monitor"] = json!(3);
            }),
            "hyperparams.lr_schedule_monitor",
            "not a metric name",
        ),
        (
            Box::new(|s| s["artifacts"] = json!({"sink": "ftp", "path": "x"})),
            "artifacts.sink",
            "unknown variant `ftp`",
        ),
        (
            Box::new(|s| s["artifacts"] = json!({"sink": "dir", "path": "x", "bucket": "y"})),
            "artifacts",
            "unknown field `bucket`",
        ),
        (
            Box::new(|s| s["artifacts"] = json!({"sink": "command", "argv": []})),
            "artifacts.argv",
            "must name a program",
        ),
        (
            Box::new(|s| {
                s["artifacts"] = json!({"sink": "dir", "path": "x", "retry": {"attempts": 0}})
            }),
            "artifacts.retry.attempts",
            "1 to 100",
        ),
        (
            Box::new(|s| {
                s["artifacts"] = json!({"sink": "command", "argv": ["true"], "timeout_seconds": -1})
            }),
            "artifacts.timeout_seconds",
            "seconds",
        ),
        (Box::new(|s| s["owner"] = json!(7)), "owner", "invalid type"),
        // An unknown field is named by its path; a missing one in the message, at its parent.
        (
            Box::new(|s| s["epochs"] = json!(3)),
            "epochs",
            "unknown field `epochs`",
        ),
        (
            Box::new(|s| s["dataset"]["shuffle"] = json!(true)),
            "dataset.shuffle",
            "unknown field `shuffle`",
        ),
        (
            Box::new(|s| {
                s.as_object_mut().unwrap().remove("run_id");
            }),
            "(top level)",
            "missing field `run_id`",
        ),
        (
            Box::new(|s| {
                s["dataset"].as_object_mut().unwrap().remove("batch_size");
            }),
            "dataset",
            "missing field `batch_size`",
        ),
    ];
    for (change, field, needle) in cases {
        let (got_field, message) = field_error(change);
        assert_eq!(got_field, field, "{message}");
        assert!(
            message.contains(needle),
            "`{field}`: {message:?} lacks {needle:?}"
        );
    }
}

#[test]
fn mock_batches_stand_in_for_data() {
    let mut spec = valid();
    spec["dataset"]["parquet_paths"] = json!([]);
    spec["mock_batches"] = json!(3);
    assert_eq!(parse(&spec).unwrap().mock_batches, Some(3));
}

#[test]
fn versions_are_checked_first_and_named() {
    let mut spec = valid();
    spec["trainer_api_version"] = json!("v2");
    spec["not_a_v1_field"] = json!(1);
    let error = parse(&spec).unwrap_err();
    assert!(
        matches!(&error, JobError::UnsupportedVersion { found, .. } if found == "v2"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("\"v2\"") && message.contains("v1"),
        "{message}"
    );
    spec.as_object_mut().unwrap().remove("trainer_api_version");
    let message = parse(&spec).unwrap_err().to_string();
    assert!(
        message.contains("trainer_api_version") && message.contains("missing"),
        "{message}"
    );
    let message = JobSpec::parse("{\"trainer_api_version\": ", "broken.json")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("broken.json") && message.contains("line 1"),
        "{message}"
    );
    let message = JobSpec::parse("[1]", "array.json").unwrap_err().to_string();
    assert!(message.contains("object"), "{message}");
}

#[test]
fn settings_take_flags_over_environment_over_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("job.json");
    std::fs::write(&spec_path, valid().to_string()).unwrap();
    let env: HashMap<&str, String> = [
        ("TRAINER_JOB_SPEC_PATH", spec_path.display().to_string()),
        ("TRAINER_PLUGIN", "from-env".to_string()),
        ("TRAINER_CHECKPOINTS_DIR", "/env/ckpt".to_string()),
        ("TRAINER_EVENTS_PATH", "".to_string()),
    ]
    .into();
    let lookup = |name: &str| env.get(name).cloned();
    // Environment over spec; an empty variable counts as unset; defaults under runs/<run_id>.
    let job = RunOptions::default().resolve_with(lookup).unwrap();
    assert_eq!(job.trainer, "from-env");
    assert_eq!(job.paths.checkpoints_dir, PathBuf::from("/env/ckpt"));
    assert_eq!(
        job.paths.events_path,
        PathBuf::from("runs/run-1/events.jsonl")
    );
    assert_eq!(job.paths.samples_dir, PathBuf::from("runs/run-1/samples"));
    assert_eq!(job.paths.cancel_file, PathBuf::from("runs/run-1/CANCEL"));
    // Relative data paths are relative to the spec's folder.
    assert_eq!(
        job.spec.dataset.parquet_paths,
        vec![dir.path().join("a.parquet")]
    );
    // Flags over environment.
    let flags = RunOptions {
        trainer: Some("from-flag".into()),
        checkpoints_dir: Some("/flag/ckpt".into()),
        run_dir: Some("/flag/run".into()),
        ..RunOptions::default()
    };
    let job = flags.resolve_with(lookup).unwrap();
    assert_eq!(job.trainer, "from-flag");
    assert_eq!(job.paths.checkpoints_dir, PathBuf::from("/flag/ckpt"));
    assert_eq!(
        job.paths.events_path,
        PathBuf::from("/flag/run/events.jsonl")
    );
    // Without a flag or variable the spec's trainer runs; without a spec path it is an error.
    let job = RunOptions {
        spec_path: Some(spec_path.clone()),
        ..RunOptions::default()
    }
    .resolve_with(|_| None)
    .unwrap();
    assert_eq!(job.trainer, "mlp-classifier");
    let message = RunOptions::default()
        .resolve_with(|_| None)
        .unwrap_err()
        .to_string();
    assert!(message.contains("TRAINER_JOB_SPEC_PATH"), "{message}");
    let message = RunOptions {
        spec_path: Some(dir.path().join("nope.json")),
        ..RunOptions::default()
    }
    .resolve_with(|_| None)
    .unwrap_err()
    .to_string();
    assert!(message.contains("nope.json"), "{message}");
}
