//! Job checkpoints written by earlier releases still resume. `fixtures/format-1.1/` holds two
//! checkpoints of one job (`spec.json`: mock batches, 6 steps, a checkpoint every 3), written by
//! the release that wrote format 1.1 (the job's record in the payload's `optimizer` field).
//! Resuming the step-3 file must end exactly where that release's own uninterrupted run ended.

use std::path::{Path, PathBuf};

use trainer_core::checkpoint::{latest_in, read};
use trainer_core::event::RunStatus;
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{run_job, CancelToken, JobPaths, JobPayload, JobSpec, ResolvedJob};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures/format-1.1")
        .join(name)
}

#[test]
fn a_format_1_1_job_checkpoint_resumes_to_the_same_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::copy(
        fixture("epoch-0000-step-000003.ckpt"),
        checkpoints.join("epoch-0000-step-000003.ckpt"),
    )
    .unwrap();
    std::fs::write(checkpoints.join("latest"), "epoch-0000-step-000003.ckpt\n").unwrap();
    let text = std::fs::read_to_string(fixture("spec.json")).unwrap();
    let job = ResolvedJob {
        spec: JobSpec::parse(&text, "spec.json").unwrap(),
        trainer: "mlp-classifier".into(),
        paths: JobPaths {
            checkpoints_dir: checkpoints.clone(),
            samples_dir: dir.path().join("samples"),
            events_path: dir.path().join("events.jsonl"),
            cancel_file: dir.path().join("CANCEL"),
        },
    };
    let hooks = MlpClassifier::from_spec(&job.spec).unwrap();
    let outcome = run_job::<crate::common::B, _>(
        hooks,
        &job,
        Default::default(),
        &CancelToken::new(),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(
        (outcome.status, outcome.step),
        (RunStatus::Completed, 6),
        "{:?}",
        outcome.reason
    );
    let ours: JobPayload = read(&latest_in(&checkpoints).unwrap().unwrap()).unwrap();
    let theirs: JobPayload = read(&fixture("epoch-0001-step-000006.ckpt")).unwrap();
    assert_eq!(ours.state.global_step, 6);
    // The new file keeps the job's record in its own field (format 1.2), the old in `optimizer`.
    assert!(ours.extension.is_some() && ours.optimizer.is_none());
    assert!(theirs.extension.is_none() && theirs.optimizer.is_some());
    assert_eq!(
        trainer_job::job_record(&ours).unwrap().run_id,
        trainer_job::job_record(&theirs).unwrap().run_id
    );
    let model = ours.module.tensor_bytes("model").unwrap();
    assert_eq!(model.len(), 4, "two layers' weights and biases");
    assert_eq!(
        model,
        theirs.module.tensor_bytes("model").unwrap(),
        "the resumed job ends with the old run's weights"
    );
    let (mut a, mut b) = (
        ours.module.tensor_bytes("optimizer").unwrap(),
        theirs.module.tensor_bytes("optimizer").unwrap(),
    );
    a.sort();
    b.sort();
    assert!(a.len() >= 8 && a == b, "the optimizer's moments match");
}
