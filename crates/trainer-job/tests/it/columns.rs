//! The feed hands every Arrow column to the trainer; `mlp-classifier`, which reads numbers,
//! refuses a text column among its features by name before the first step.

use crate::common;

use common::{events, job, write_table, B};
use trainer_core::event::RunStatus;
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{run_job, CancelToken};

#[test]
fn mlp_classifier_refuses_a_text_feature_column_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("table.parquet");
    write_table(&file, 0, 40, 20);
    let mut job = job(dir.path(), vec![file], 4, 2, 2);
    job.spec.dataset.columns = Some(vec!["x0".into(), "name".into(), "label".into()]);
    let hooks = MlpClassifier::from_spec(&job.spec).unwrap();
    let outcome =
        run_job::<B, _>(hooks, &job, Default::default(), &CancelToken::new(), vec![]).unwrap();
    assert_eq!((outcome.status, outcome.step), (RunStatus::Failed, 0));
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("\"name\"") && reason.contains("Utf8") && reason.contains("setup"),
        "{reason}"
    );
    let last = events(&job.paths.events_path).pop().unwrap();
    assert_eq!(last["status"], "failed");
}
