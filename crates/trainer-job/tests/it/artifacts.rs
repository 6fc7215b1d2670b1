//! A checkpoint's own files: `save_checkpoint` writes into a folder that the runtime puts
//! beside the checkpoint, lists in the index and the `checkpoint` event, prunes with it, and
//! hands back to `load_checkpoint` on resume.

use crate::common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::tensor::backend::AutodiffBackend;
use common::{events, job, B};
use trainer_core::checkpoint::CheckpointIndex;
use trainer_core::event::RunStatus;
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{
    run_job, CancelToken, CheckpointContext, HookResult, ResolvedJob, ResumeContext, StepContext,
    StepHooks, StepResult,
};

/// What `load_checkpoint` was handed: the step, and the folder's `weights/step.txt`.
pub type Resumed = Arc<Mutex<Vec<(usize, Option<String>)>>>;

/// The mlp-classifier writing `weights/step.txt` (the step) and `final` (on the last
/// checkpoint) per checkpoint; cancels the job at a step.
pub struct WithArtifacts {
    pub inner: MlpClassifier,
    pub cancel_at: Option<(usize, CancelToken)>,
    pub resumed: Resumed,
}

impl<Bk: AutodiffBackend> StepHooks<Bk> for WithArtifacts {
    crate::delegate_to_mlp!(Bk);

    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<Bk>> {
        if let Some((at, token)) = &self.cancel_at {
            if *at == ctx.step {
                token.cancel();
            }
        }
        self.inner.train_step(state, batch, ctx)
    }
    fn save_checkpoint(
        &self,
        _state: &Self::State,
        ctx: &CheckpointContext<'_>,
    ) -> HookResult<Option<serde_json::Value>> {
        let dir = ctx.output_dir.expect("a writable checkpoint folder");
        assert_eq!(
            std::fs::read_dir(dir)?.count(),
            0,
            "the folder starts empty"
        );
        std::fs::create_dir(dir.join("weights"))?;
        std::fs::write(dir.join("weights/step.txt"), ctx.step.to_string())?;
        if ctx.is_final {
            std::fs::write(dir.join("final"), b"")?;
        }
        Ok(Some(serde_json::json!({"artifact_step": ctx.step})))
    }
    fn load_checkpoint(
        &mut self,
        _state: &mut Self::State,
        extra: Option<serde_json::Value>,
        ctx: &ResumeContext<'_>,
    ) -> HookResult<()> {
        assert_eq!(extra.unwrap()["artifact_step"], ctx.step);
        let written = ctx
            .checkpoint_dir
            .map(|dir| std::fs::read_to_string(dir.join("weights/step.txt")).unwrap());
        self.resumed.lock().unwrap().push((ctx.step, written));
        Ok(())
    }
}

pub fn artifacts_job(dir: &std::path::Path) -> ResolvedJob {
    let mut job = job(dir, vec![dir.join("never-read.parquet")], 12, 2, 3);
    job.spec.dataset.parquet_paths.clear();
    job.spec.mock_batches = Some(5);
    job.spec.keep_checkpoints = Some(2);
    job
}

fn folders(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn artifact_folders_are_written_listed_pruned_and_handed_back_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let job = artifacts_job(dir.path());
    let resumed: Resumed = Arc::default();
    let token = CancelToken::new();
    let hooks = |cancel_at| WithArtifacts {
        inner: MlpClassifier::from_spec(&job.spec).unwrap(),
        cancel_at,
        resumed: resumed.clone(),
    };
    // Cancelled after step 8 (steps 0..=7 done): checkpoints at 3, 6 and the cancellation's.
    let first = run_job::<B, _>(
        hooks(Some((7, token.clone()))),
        &job,
        Default::default(),
        &token,
        vec![],
    )
    .unwrap();
    assert_eq!((first.status, first.step), (RunStatus::Cancelled, 8));
    let checkpoints: PathBuf = job.paths.checkpoints_dir.clone();
    // keep_checkpoints 2: step 3's file and folder are gone.
    assert_eq!(
        folders(&checkpoints),
        [
            "epoch-0001-step-000006.artifacts",
            "epoch-0001-step-000008.artifacts"
        ]
    );
    let read = |name: &str| std::fs::read_to_string(checkpoints.join(name)).unwrap();
    assert_eq!(
        read("epoch-0001-step-000008.artifacts/weights/step.txt"),
        "8"
    );
    assert!(checkpoints
        .join("epoch-0001-step-000008.artifacts/final")
        .exists());
    assert!(!checkpoints
        .join("epoch-0001-step-000006.artifacts/final")
        .exists());

    // The resumed job gets step 8's folder back and runs to the end.
    let second = run_job::<B, _>(
        hooks(None),
        &job,
        Default::default(),
        &CancelToken::new(),
        vec![],
    )
    .unwrap();
    assert_eq!((second.status, second.step), (RunStatus::Completed, 12));
    assert_eq!(*resumed.lock().unwrap(), [(8, Some("8".to_string()))]);
    assert_eq!(
        folders(&checkpoints),
        [
            "epoch-0001-step-000009.artifacts",
            "epoch-0002-step-000012.artifacts"
        ]
    );
    // The index lists each kept checkpoint's files; the events list them too.
    let index: CheckpointIndex = serde_json::from_str(&read("index.json")).unwrap();
    let listed: Vec<(usize, Vec<String>)> = index
        .checkpoints
        .iter()
        .map(|e| (e.step, e.files.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (9, vec!["weights/step.txt".to_string()]),
            (
                12,
                vec!["final".to_string(), "weights/step.txt".to_string()]
            ),
        ]
    );
    let log = events(&job.paths.events_path);
    let last = log.iter().rfind(|e| e["event"] == "checkpoint").unwrap();
    assert_eq!(last["step"], 12);
    assert_eq!(
        last["files"],
        serde_json::json!(["final", "weights/step.txt"])
    );
}
