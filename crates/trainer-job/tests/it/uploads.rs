//! The artifact upload bridge: every checkpoint, companion file and sample reaches the sink
//! with its SHA-256; failures are retried, then reported; a cancelled job still finishes its
//! uploads before `run_ended`; a resumed job uploads no name twice.
#![cfg(unix)]

use crate::artifacts::{artifacts_job, Resumed, WithArtifacts};
use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{events, B};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use trainer_core::event::RunStatus;
use trainer_job::artifacts::{ArtifactsSpec, MANIFEST_FILE};
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{run_job, CancelToken, JobOutcome, ResolvedJob};

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn run(job: &ResolvedJob, cancel_at: Option<usize>) -> JobOutcome {
    let token = CancelToken::new();
    let hooks = WithArtifacts {
        inner: MlpClassifier::from_spec(&job.spec).unwrap(),
        cancel_at: cancel_at.map(|step| (step, token.clone())),
        resumed: Resumed::default(),
    };
    run_job::<B, _>(hooks, job, Default::default(), &token, vec![]).unwrap()
}

/// The artifacts job (12 steps, checkpoints every 3, the last 2 kept) with samples every 6
/// and `artifacts` as the sink.
fn job_with(dir: &Path, artifacts: Value) -> ResolvedJob {
    let mut job = artifacts_job(dir);
    job.spec.sample_every = Some(6);
    job.spec.keep_checkpoints = None;
    job.spec.artifacts = Some(serde_json::from_value::<ArtifactsSpec>(artifacts).unwrap());
    job
}

/// The run folder's files that must reach the sink, by name: every checkpoint, its
/// companion folder's files, every sample.
fn local_files(job: &ResolvedJob) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    let mut walk = vec![(job.paths.checkpoints_dir.clone(), "checkpoints".to_string())];
    walk.push((job.paths.samples_dir.clone(), "samples".to_string()));
    while let Some((dir, prefix)) = walk.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if path.is_dir() {
                walk.push((path, format!("{prefix}/{name}")));
            } else if name.ends_with(".ckpt")
                || prefix.contains(".artifacts")
                || prefix == "samples"
            {
                files.insert(format!("{prefix}/{name}"), path);
            }
        }
    }
    files
}

fn of_kind<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn every_checkpoint_file_and_sample_reaches_a_dir_sink_with_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let job = job_with(dir.path(), json!({"sink": "dir", "path": bucket}));
    let outcome = run(&job, None);
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.reason);
    let local = local_files(&job);
    // 4 checkpoints (3, 6, 9, 12), each with weights/step.txt, the last with `final`; 2 samples.
    assert_eq!(local.len(), 4 + 4 + 1 + 2, "{local:?}");
    for (name, path) in &local {
        let copy = bucket.join(name);
        assert_eq!(sha256(&copy), sha256(path), "{name}");
    }
    let manifest: Vec<Value> = std::fs::read_to_string(bucket.join(MANIFEST_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let listed: BTreeMap<String, String> = manifest
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed.len(), manifest.len(), "each name once");
    let expected: BTreeMap<String, String> =
        local.iter().map(|(n, p)| (n.clone(), sha256(p))).collect();
    assert_eq!(listed, expected);
    // One event per upload, with the same digest, all before `run_ended`.
    let log = events(&job.paths.events_path);
    let uploaded: BTreeMap<String, String> = of_kind(&log, "artifact_uploaded")
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap().to_string(),
                e["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(uploaded, expected);
    assert_eq!(log.last().unwrap()["event"], "run_ended");
    // A companion file goes before its checkpoint.
    let order: Vec<&str> = of_kind(&log, "artifact_uploaded")
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    let position = |name: &str| order.iter().position(|n| *n == name).unwrap();
    assert!(
        position("checkpoints/epoch-0002-step-000012.artifacts/final")
            < position("checkpoints/epoch-0002-step-000012.ckpt")
    );
}

/// A command sink that copies each file into `dest` (named with `_` for `/`), logs each name
/// to `dest/log`, and fails the first `failures` tries of each name.
fn command_sink(dest: &Path, failures: u32, attempts: u32, sleep: f64) -> Value {
    let script = format!(
        r#"set -e
key=$(printf %s "$TRAINER_ARTIFACT_NAME" | tr / _)
tries="{dest}/$key.tries"
n=$(cat "$tries" 2>/dev/null || echo 0)
echo $((n + 1)) > "$tries"
[ "$n" -ge {failures} ] || {{ echo "refused try $n" >&2; exit 3; }}
sleep {sleep}
cp "$TRAINER_ARTIFACT_PATH" "{dest}/$key"
[ "$(sha256sum "{dest}/$key" | cut -d' ' -f1)" = "$TRAINER_ARTIFACT_SHA256" ]
echo "$TRAINER_ARTIFACT_NAME $TRAINER_ARTIFACT_KIND $TRAINER_ARTIFACT_STEP" >> "{dest}/log"
"#,
        dest = dest.display()
    );
    std::fs::create_dir_all(dest).unwrap();
    json!({
        "sink": "command",
        "argv": ["sh", "-c", script],
        "retry": {"attempts": attempts, "backoff_seconds": 0.01}
    })
}

fn logged(dest: &Path) -> Vec<String> {
    std::fs::read_to_string(dest.join("log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn failed_uploads_are_retried_then_reported_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Two refusals per name: three tries succeed.
    let dest = dir.path().join("dest");
    let job = job_with(&dir.path().join("a"), command_sink(&dest, 2, 3, 0.0));
    assert_eq!(run(&job, None).status, RunStatus::Completed);
    let local = local_files(&job);
    let mut names = logged(&dest);
    names.sort();
    assert_eq!(names, local.keys().cloned().collect::<Vec<_>>());
    for (name, path) in &local {
        assert_eq!(sha256(&dest.join(name.replace('/', "_"))), sha256(path));
        assert_eq!(
            std::fs::read_to_string(dest.join(format!("{}.tries", name.replace('/', "_"))))
                .unwrap()
                .trim(),
            "3"
        );
    }
    let log = events(&job.paths.events_path);
    assert!(of_kind(&log, "artifact_failed").is_empty());

    // Two tries are not enough: each file is reported failed, with the command's message.
    let dest = dir.path().join("dest-b");
    let job = job_with(&dir.path().join("b"), command_sink(&dest, 2, 2, 0.0));
    assert_eq!(run(&job, None).status, RunStatus::Completed);
    let log = events(&job.paths.events_path);
    let failed = of_kind(&log, "artifact_failed");
    assert_eq!(failed.len(), local_files(&job).len());
    assert!(of_kind(&log, "artifact_uploaded").is_empty());
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 tries") && reason.contains("refused try 1"),
        "{reason}"
    );
    assert!(logged(&dest).is_empty());
}

#[test]
fn a_cancelled_job_finishes_its_uploads_and_its_resume_uploads_no_name_twice() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    // Each upload takes 0.2 s: the cancellation comes while uploads are under way.
    let job = job_with(dir.path(), command_sink(&dest, 0, 1, 0.2));
    let first = run(&job, Some(4));
    assert_eq!((first.status, first.step), (RunStatus::Cancelled, 5));
    let log = events(&job.paths.events_path);
    let uploaded: Vec<&str> = of_kind(&log, "artifact_uploaded")
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    assert!(
        uploaded.contains(&"checkpoints/epoch-0001-step-000005.ckpt"),
        "the cancellation's checkpoint is uploaded before the run ends: {uploaded:?}"
    );
    assert_eq!(log.last().unwrap()["status"], "cancelled");
    assert_eq!(logged(&dest).len(), uploaded.len());

    let second = run(&job, None);
    assert_eq!(second.status, RunStatus::Completed);
    let names = logged(&dest);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "a name uploaded twice: {names:?}"
    );
    assert_eq!(
        unique,
        local_files(&job).keys().cloned().collect::<Vec<_>>()
    );
}
