//! A plateau schedule in a job steps once per metrics window with the window's mean of the
//! monitored metric, as PyTorch's `ReduceLROnPlateau` fed the same means; a monitor the step
//! never reports fails the job at the first window.

use crate::common;

use burn::tensor::backend::AutodiffBackend;
use common::{events, job, B};
use serde_json::Value;
use trainer_core::event::RunStatus;
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{
    run_job, CancelToken, HookResult, ResolvedJob, StepContext, StepHooks, StepResult,
};

/// The mlp-classifier, also reporting `score`: at each step of window `k` (steps
/// `k * every .. (k + 1) * every`), a value whose window mean is `means[k]`.
struct Scored {
    inner: MlpClassifier,
    means: Vec<f64>,
    every: usize,
}

impl<Bk: AutodiffBackend> StepHooks<Bk> for Scored {
    crate::delegate_to_mlp!(Bk);

    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<Bk>> {
        let result = self.inner.train_step(state, batch, ctx)?;
        let mean = self.means[ctx.step / self.every];
        // Values around the mean (the window averages them), so that the runtime must average.
        let offset = [-0.25, 0.0, 0.25][ctx.step % self.every];
        Ok(result.metric("score", mean + offset))
    }
}

/// PyTorch's `ReduceLROnPlateau` case of the schedules' reference file.
fn torch_plateau_case() -> Value {
    let file: Value =
        serde_json::from_str(include_str!("fixtures/lr_schedules_torch.json")).unwrap();
    file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scheduler"] == "ReduceLROnPlateau")
        .unwrap()
        .clone()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

const EVERY: usize = 3;

/// A mock-batch job with the case's plateau schedule watching `monitor`, one window per metric.
fn plateau_job(dir: &std::path::Path, case: &Value, monitor: &str) -> (ResolvedJob, Scored) {
    let means = floats(&case["metrics"]);
    let mut job = job(
        dir,
        vec![dir.join("never-read.parquet")],
        means.len() * EVERY,
        EVERY,
        1000,
    );
    job.spec.dataset.parquet_paths.clear();
    job.spec.mock_batches = Some(4);
    job.spec.hyperparams["learning_rate"] = case["base_lr"].clone();
    job.spec.hyperparams["lr_schedule"] =
        serde_json::json!({"scheduler": "ReduceLROnPlateau", "params": case["params"]});
    job.spec.hyperparams["lr_schedule_monitor"] = monitor.into();
    let hooks = Scored {
        inner: MlpClassifier::from_spec(&job.spec).unwrap(),
        means,
        every: EVERY,
    };
    (job, hooks)
}

#[test]
fn a_plateau_schedule_steps_per_window_as_pytorch_fed_the_window_means() {
    let case = torch_plateau_case();
    let dir = tempfile::tempdir().unwrap();
    let (job, hooks) = plateau_job(dir.path(), &case, "score");
    let outcome =
        run_job::<B, _>(hooks, &job, Default::default(), &CancelToken::new(), vec![]).unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.reason);
    // Each metrics event carries the lr its window's steps used: PyTorch's lr after k steps
    // fed the first k window means (the reference's `lrs[k]`).
    let log = events(&job.paths.events_path);
    let windows: Vec<(f64, f64)> = log
        .iter()
        .filter(|e| e["event"] == "metrics")
        .map(|e| {
            (
                e["metrics"]["score"].as_f64().unwrap(),
                e["metrics"]["lr"].as_f64().unwrap(),
            )
        })
        .collect();
    let means = floats(&case["metrics"]);
    let torch = floats(&case["lrs"]);
    assert_eq!(windows.len(), means.len());
    for (k, (score, lr)) in windows.iter().enumerate() {
        assert!(
            (score - means[k]).abs() < 1e-12,
            "window {k}: score {score}"
        );
        let expected = torch[k];
        // The tolerance of the schedules' own comparison with PyTorch.
        assert!(
            (lr - expected).abs() <= 1e-12 * expected,
            "window {k}: lr {lr}, PyTorch {expected}"
        );
    }
    // The case holds while the metric improves and cuts after `patience` flat windows.
    assert!(torch[..5].iter().all(|&lr| lr == torch[0]));
    assert!(torch[5] < torch[4]);
}

#[test]
fn a_monitor_the_step_never_reports_fails_the_job_at_the_first_window() {
    let case = torch_plateau_case();
    let dir = tempfile::tempdir().unwrap();
    let (job, hooks) = plateau_job(dir.path(), &case, "accuracy_top5");
    let outcome =
        run_job::<B, _>(hooks, &job, Default::default(), &CancelToken::new(), vec![]).unwrap();
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(outcome.step, EVERY);
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("lr_schedule_monitor")
            && reason.contains("accuracy_top5")
            && reason.contains("score"),
        "{reason}"
    );
    let last = events(&job.paths.events_path).pop().unwrap();
    assert_eq!(last["status"], "failed");
}
