//! The runtime in process: cadence of metrics and checkpoints, a step that fails at step k, a
//! cancellation and its exact resume, smoke runs on mock batches, steps that skip the cadence,
//! user callbacks on the engine's loop.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::tensor::backend::AutodiffBackend;
use common::{events, job, steps_of, write_table, B};
use trainer_core::callback::{Callback, Context};
use trainer_core::checkpoint::{latest_in, read};
use trainer_core::event::RunStatus;
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{
    run_job, CancelToken, HookResult, JobOutcome, JobPayload, ResolvedJob, StepContext, StepHooks,
    StepResult, EXIT_CANCELLED,
};

/// The mlp-classifier with scripted trouble: fail at a step, cancel at a step, skip the
/// cadence at a step.
struct Scripted {
    inner: MlpClassifier,
    trouble: common::Trouble,
    skip_at: Option<usize>,
    /// At this step, the checkpoints folder becomes a plain file: saves after it fail.
    break_checkpoints_at: Option<(usize, PathBuf)>,
}

impl Scripted {
    fn new(job: &ResolvedJob) -> Self {
        Self {
            inner: MlpClassifier::from_spec(&job.spec).unwrap(),
            trouble: common::Trouble::default(),
            skip_at: None,
            break_checkpoints_at: None,
        }
    }
}

impl<Bk: AutodiffBackend> StepHooks<Bk> for Scripted {
    crate::delegate_to_mlp!(Bk);

    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<Bk>> {
        self.trouble.strike(ctx.step)?;
        if let Some((at, folder)) = &self.break_checkpoints_at {
            if *at == ctx.step {
                // A rename is atomic: a save in flight finds the folder or not, never half of it.
                std::fs::rename(folder, folder.with_extension("gone")).unwrap();
                std::fs::write(folder, b"not a folder").unwrap();
            }
        }
        let mut result = self.inner.train_step(state, batch, ctx)?;
        result.control.skip_cadence_emit = self.skip_at == Some(ctx.step + 1);
        Ok(result)
    }
}

fn data(dir: &Path) -> Vec<PathBuf> {
    let file = dir.join("table.parquet");
    write_table(&file, 0, 150, 40);
    vec![file]
}

fn run(hooks: Scripted, job: &ResolvedJob, cancel: &CancelToken) -> JobOutcome {
    run_job::<B, _>(hooks, job, Default::default(), cancel, Vec::new()).unwrap()
}

/// Every tensor's bytes in a checkpoint's state dict: the model's in order, the optimizer's
/// sorted (its state is keyed by parameter ids, which differ between runs; values must not).
fn tensor_bytes(payload: &JobPayload) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (model, mut optimizer) = (
        payload.module.tensor_bytes("model").unwrap(),
        payload.module.tensor_bytes("optimizer").unwrap(),
    );
    assert!(
        model.len() == 4 && optimizer.len() >= 8,
        "expected the tensors of two layers and their moments"
    );
    optimizer.sort();
    (model, optimizer)
}

/// The state dict of the checkpoint `latest` names, and its step.
fn latest_state(job: &ResolvedJob) -> (usize, JobPayload) {
    let file = latest_in(&job.paths.checkpoints_dir)
        .unwrap()
        .expect("a checkpoint");
    let payload: JobPayload = read(&file).unwrap();
    (payload.state.global_step, payload)
}

#[test]
fn metrics_and_checkpoints_follow_the_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), data(dir.path()), 23, 4, 10);
    let outcome = run(Scripted::new(&job), &job, &CancelToken::new());
    assert_eq!(
        (outcome.status, outcome.step, outcome.exit_code()),
        (RunStatus::Completed, 23, 0)
    );
    let log = events(&job.paths.events_path);
    assert_eq!(log[0]["event"], "run_started");
    assert_eq!(log[0]["config"]["job"]["run_id"], "test-run");
    // Every 4 steps, plus the unfinished window at the end.
    assert_eq!(steps_of(&log, "metrics"), [4, 8, 12, 16, 20, 23]);
    for event in log.iter().filter(|e| e["event"] == "metrics") {
        for name in [
            "loss",
            "accuracy",
            "lr",
            "steps_per_second",
            "data_wait_fraction",
        ] {
            assert!(
                event["metrics"][name].is_number(),
                "{name} missing in {event}"
            );
        }
    }
    assert_eq!(steps_of(&log, "checkpoint"), [10, 20, 23]);
    let last = log.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["status"].as_str()),
        (Some("run_ended"), Some("completed"))
    );
    assert_eq!(latest_state(&job).0, 23);
}

#[test]
fn a_failing_step_ends_the_job_failed_and_keeps_the_checkpoint_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), data(dir.path()), 30, 4, 5);
    let mut hooks = Scripted::new(&job);
    hooks.trouble.fail_at = Some(7);
    let outcome = run(hooks, &job, &CancelToken::new());
    assert_eq!(
        (outcome.status, outcome.step, outcome.exit_code()),
        (RunStatus::Failed, 7, 1)
    );
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("train_step") && reason.contains("scripted failure at step 7"),
        "{reason}"
    );
    let log = events(&job.paths.events_path);
    let last = log.last().unwrap();
    assert_eq!(last["status"], "failed");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("scripted failure"),
        "{last}"
    );
    assert_eq!(
        steps_of(&log, "checkpoint"),
        [5],
        "no checkpoint of the failed state"
    );
    // The checkpoint before the failure is intact, and a rerun resumes from it and completes.
    let (step, _) = latest_state(&job);
    assert_eq!(step, 5);
    let outcome = run(Scripted::new(&job), &job, &CancelToken::new());
    assert_eq!((outcome.status, outcome.step), (RunStatus::Completed, 30));
}

#[test]
fn a_cancelled_job_checkpoints_and_resumes_to_the_same_parameters() {
    let straight_dir = tempfile::tempdir().unwrap();
    let files = data(straight_dir.path());
    let straight = job(straight_dir.path(), files.clone(), 40, 3, 10);
    assert_eq!(
        run(Scripted::new(&straight), &straight, &CancelToken::new()).status,
        RunStatus::Completed
    );

    let dir = tempfile::tempdir().unwrap();
    let cut = job(dir.path(), files, 40, 3, 10);
    let token = CancelToken::new();
    let mut hooks = Scripted::new(&cut);
    // Cancelled during step 13 (index 12): the step finishes, then the run stops at 13 — in
    // the middle of an epoch (10 batches) and of a metrics window.
    hooks.trouble.cancel_at = Some((12, token.clone()));
    let outcome = run(hooks, &cut, &token);
    assert_eq!(
        (outcome.status, outcome.step, outcome.exit_code()),
        (RunStatus::Cancelled, 13, EXIT_CANCELLED)
    );
    let log = events(&cut.paths.events_path);
    let last = log.last().unwrap();
    assert_eq!(
        (last["status"].as_str(), last["step"].as_u64()),
        (Some("cancelled"), Some(13))
    );
    assert_eq!(latest_state(&cut).0, 13);

    let outcome = run(Scripted::new(&cut), &cut, &CancelToken::new());
    assert_eq!((outcome.status, outcome.step), (RunStatus::Completed, 40));
    let (_, resumed) = latest_state(&cut);
    let (_, uninterrupted) = latest_state(&straight);
    assert_eq!(
        tensor_bytes(&resumed),
        tensor_bytes(&uninterrupted),
        "the resumed job ended with other parameters"
    );
    // The resumed log continues the first one without duplicates, and every metric reading
    // equals the uninterrupted run's: the window cut by the cancellation (steps 13..15) was
    // checkpointed and continued.
    let log = events(&cut.paths.events_path);
    assert_eq!(
        log.iter().filter(|e| e["event"] == "run_started").count(),
        2
    );
    let losses = |log: &[serde_json::Value]| -> Vec<(u64, String)> {
        log.iter()
            .filter(|e| e["event"] == "metrics")
            .map(|e| {
                (
                    e["step"].as_u64().unwrap(),
                    e["metrics"]["loss"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(losses(&log), losses(&events(&straight.paths.events_path)));
}

#[test]
fn mock_batches_run_without_data_and_skipped_steps_emit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job(
        dir.path(),
        vec![dir.path().join("never-read.parquet")],
        12,
        3,
        6,
    );
    job.spec.dataset.parquet_paths.clear();
    job.spec.mock_batches = Some(4);
    job.spec.sample_every = Some(6);
    let mut hooks = Scripted::new(&job);
    hooks.skip_at = Some(6);
    let outcome = run(hooks, &job, &CancelToken::new());
    assert_eq!((outcome.status, outcome.step), (RunStatus::Completed, 12));
    let log = events(&job.paths.events_path);
    // Step 6 skipped its metrics, checkpoint and sample: they come at the next cadence.
    assert_eq!(steps_of(&log, "metrics"), [3, 9, 12]);
    assert_eq!(steps_of(&log, "checkpoint"), [12]);
    assert_eq!(steps_of(&log, "sample"), [12]);
    let sample = log.iter().find(|e| e["event"] == "sample").unwrap();
    let file = sample["file"].as_str().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(json["predicted"].as_array().unwrap().len(), 16);
}

#[test]
fn a_checkpoint_of_another_run_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let files = data(dir.path());
    let first = job(dir.path(), files.clone(), 5, 5, 5);
    run(Scripted::new(&first), &first, &CancelToken::new());
    let mut other = job(dir.path(), files, 5, 5, 5);
    other.spec.run_id = "other-run".into();
    let outcome = run(Scripted::new(&other), &other, &CancelToken::new());
    assert_eq!(outcome.status, RunStatus::Failed);
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("test-run") && reason.contains("other-run"),
        "{reason}"
    );
    let last = events(&other.paths.events_path).pop().unwrap();
    assert_eq!(last["status"], "failed");
}

/// Records the hooks it sees (with the step) and stops the run at a step.
struct StopAt {
    step: usize,
    seen: Arc<Mutex<Vec<String>>>,
}

impl StopAt {
    fn record(&self, hook: &str, ctx: &Context<'_>) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{hook}@{}", ctx.state.global_step));
    }
}

impl Callback for StopAt {
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record("train_begin", ctx);
        Ok(())
    }
    fn on_epoch_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record("epoch_begin", ctx);
        Ok(())
    }
    fn on_batch_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record("batch_begin", ctx);
        Ok(())
    }
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record("batch_end", ctx);
        if ctx.state.global_step == self.step {
            ctx.control.stop("enough steps");
        }
        Ok(())
    }
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record("epoch_end", ctx);
        Ok(())
    }
    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record("train_end", ctx);
        Ok(())
    }
}

#[test]
fn user_callbacks_run_on_the_engine_loop_and_can_stop_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), data(dir.path()), 30, 4, 10);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = StopAt {
        step: 6,
        seen: seen.clone(),
    };
    let outcome = run_job::<B, _>(
        Scripted::new(&job),
        &job,
        Default::default(),
        &CancelToken::new(),
        vec![Box::new(stop)],
    )
    .unwrap();
    // Stopped right after the `BatchEnd` round of step 6: the loop's stop request, as in `fit`.
    assert_eq!(
        (outcome.status, outcome.step, outcome.reason.as_deref()),
        (RunStatus::Completed, 6, Some("enough steps"))
    );
    // One round per step, no epoch rounds (the feed streams across epochs), then the end.
    let mut expected = vec!["train_begin@0".to_string()];
    for step in 0..6 {
        expected.push(format!("batch_begin@{step}"));
        expected.push(format!("batch_end@{}", step + 1));
    }
    expected.push("train_end@6".into());
    assert_eq!(*seen.lock().unwrap(), expected);
    let log = events(&job.paths.events_path);
    assert_eq!(
        steps_of(&log, "metrics"),
        [4, 6],
        "the unfinished window is emitted at the stop"
    );
    assert_eq!(
        steps_of(&log, "checkpoint"),
        [6],
        "a checkpoint at the end of a stopped job"
    );
    let early = log
        .iter()
        .find(|e| e["event"] == "early_stop")
        .expect("an early_stop event");
    assert_eq!(
        (early["step"].as_u64(), early["reason"].as_str()),
        (Some(6), Some("enough steps"))
    );
    let last = log.last().unwrap();
    assert_eq!(
        (last["status"].as_str(), last["reason"].as_str()),
        (Some("completed"), Some("enough steps"))
    );
}

#[test]
fn a_panicking_step_ends_the_job_failed_with_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), data(dir.path()), 30, 4, 5);
    let mut hooks = Scripted::new(&job);
    hooks.trouble.panic_at = Some(7);
    let outcome = run(hooks, &job, &CancelToken::new());
    assert_eq!(
        (outcome.status, outcome.step, outcome.exit_code()),
        (RunStatus::Failed, 7, 1)
    );
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("a panic during") && reason.contains("scripted panic at step 7"),
        "{reason}"
    );
    let log = events(&job.paths.events_path);
    let last = log.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["status"].as_str()),
        (Some("run_ended"), Some("failed"))
    );
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("scripted panic at step 7"),
        "{last}"
    );
    // The checkpoint before the panic stands and resumes.
    assert_eq!(latest_state(&job).0, 5);
    let outcome = run(Scripted::new(&job), &job, &CancelToken::new());
    assert_eq!((outcome.status, outcome.step), (RunStatus::Completed, 30));
}

#[test]
fn a_final_checkpoint_that_cannot_be_written_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints every 5 steps; from step 12 on the folder is gone (a file in its place).
    let job = job(dir.path(), data(dir.path()), 14, 4, 5);
    let mut hooks = Scripted::new(&job);
    hooks.break_checkpoints_at = Some((12, job.paths.checkpoints_dir.clone()));
    let outcome = run(hooks, &job, &CancelToken::new());
    assert_eq!(
        (outcome.status, outcome.step, outcome.exit_code()),
        (RunStatus::Failed, 14, 1)
    );
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("final checkpoint") && reason.contains("-step-000014.ckpt"),
        "{reason}"
    );
    let log = events(&job.paths.events_path);
    // The step-10 save is asynchronous: it may still be on its way when the folder goes, and
    // fail too. The final one fails for sure, and is the last.
    let failed: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| e["event"] == "checkpoint_failed")
        .collect();
    let steps: Vec<u64> = failed.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert!(steps == [14] || steps == [10, 14], "{steps:?}");
    let last = failed.last().unwrap();
    assert!(
        last["file"]
            .as_str()
            .unwrap()
            .ends_with("-step-000014.ckpt"),
        "{last}"
    );
    assert!(failed
        .iter()
        .all(|e| e["reason"].as_str().is_some_and(|r| !r.is_empty())));
    let ends: Vec<&serde_json::Value> = log.iter().filter(|e| e["event"] == "run_ended").collect();
    assert_eq!(ends.len(), 1, "one run_ended: {ends:?}");
    assert_eq!(ends[0]["status"], "failed");
}
