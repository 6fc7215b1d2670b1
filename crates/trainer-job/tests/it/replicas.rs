//! A job of several replicas in one process (`replicas` in the spec): the replicas hold the
//! same state after every step, a run cut (by its steps, or cancelled) and resumed ends with the
//! uninterrupted run's state, and a replica that fails (an error, a panic, a trainer that does not average) fails the job
//! at once with its own message instead of leaving the others waiting.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use common::{events, job, steps_of, write_table, B};
use trainer_core::checkpoint::{latest_in, read};
use trainer_core::event::RunStatus;
use trainer_job::mlp_classifier::MlpClassifier;
use trainer_job::{
    run_job, run_job_replicated, CancelToken, HookResult, JobOutcome, JobPayload, ResolvedJob,
    StepContext, StepHooks, StepResult,
};

/// What a replica wrote after each step: its rank among the trainers made, the step and its
/// state dict's tensors.
type Trace = Arc<Mutex<Vec<(usize, usize, Vec<Vec<u8>>)>>>;

/// The mlp-classifier that records its state after every step, and fails, panics or skips
/// the gradient average at a step when told.
struct Traced {
    inner: MlpClassifier,
    rank: usize,
    trace: Trace,
    trouble: common::Trouble,
    skip_average_at: Option<usize>,
}

impl Traced {
    fn new(job: &ResolvedJob, rank: usize, trace: &Trace) -> Self {
        Self {
            inner: MlpClassifier::from_spec(&job.spec).unwrap(),
            rank,
            trace: trace.clone(),
            trouble: common::Trouble::default(),
            skip_average_at: None,
        }
    }
}

impl<Bk: AutodiffBackend> StepHooks<Bk> for Traced {
    crate::delegate_to_mlp!(Bk);

    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<Bk>> {
        self.trouble.strike(ctx.step)?;
        let ctx = match self.skip_average_at == Some(ctx.step) {
            true => StepContext {
                peer: None,
                ..ctx.clone()
            },
            false => ctx.clone(),
        };
        let result = self.inner.train_step(state, batch, &ctx)?;
        let dict = <MlpClassifier as StepHooks<Bk>>::state_dict(&self.inner, state)?;
        let tensors = dict.tensor_bytes("model")?;
        self.trace
            .lock()
            .unwrap()
            .push((self.rank, ctx.step, tensors));
        Ok(result)
    }
}

fn data(dir: &Path) -> Vec<PathBuf> {
    let file = dir.join("table.parquet");
    write_table(&file, 0, 150, 40);
    vec![file]
}

/// The test job with 2 replicas.
fn replicated(dir: &Path, files: Vec<PathBuf>, max_steps: usize) -> ResolvedJob {
    let mut job = job(dir, files, max_steps, 4, 5);
    job.spec.replicas = 2;
    job
}

fn run_pair(job: &ResolvedJob, rank0: Traced, rank1: Traced) -> JobOutcome {
    run_cancellable(job, rank0, rank1, &CancelToken::new())
}

fn run_cancellable(
    job: &ResolvedJob,
    rank0: Traced,
    rank1: Traced,
    cancel: &CancelToken,
) -> JobOutcome {
    run_job_replicated::<B, _>(
        rank0,
        vec![(rank1, Default::default())],
        job,
        Default::default(),
        cancel,
        Vec::new(),
    )
    .unwrap()
}

/// The model's and the optimizer's tensors of the latest checkpoint (the optimizer's sorted:
/// keyed by parameter ids, which differ between runs).
fn final_tensors(job: &ResolvedJob) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let file = latest_in(&job.paths.checkpoints_dir).unwrap().unwrap();
    let payload: JobPayload = read(&file).unwrap();
    let mut optimizer = payload.module.tensor_bytes("optimizer").unwrap();
    optimizer.sort();
    (payload.module.tensor_bytes("model").unwrap(), optimizer)
}

#[test]
fn replicas_stay_identical_step_by_step_and_a_resumed_run_ends_like_an_unbroken_one() {
    let dir = tempfile::tempdir().unwrap();
    let files = data(dir.path());
    let straight = replicated(&dir.path().join("straight"), files.clone(), 20);
    let trace = Trace::default();
    let outcome = run_pair(
        &straight,
        Traced::new(&straight, 0, &trace),
        Traced::new(&straight, 1, &trace),
    );
    assert_eq!(
        (outcome.status, outcome.step),
        (RunStatus::Completed, 20),
        "{:?}",
        outcome.reason
    );
    // Both replicas stepped every step, on different batches, into the same state.
    let trace = trace.lock().unwrap();
    for step in 0..20 {
        let states: Vec<_> = trace.iter().filter(|(_, s, _)| *s == step).collect();
        assert_eq!(states.len(), 2, "step {step}: {} replicas", states.len());
        assert_ne!(states[0].0, states[1].0);
        assert!(
            states[0].2 == states[1].2,
            "the replicas differ after step {step}"
        );
    }
    // 150 rows in batches of 16: 9 full batches, 4 rounds of 2 per epoch.
    let log = events(&straight.paths.events_path);
    assert_eq!(steps_of(&log, "checkpoint"), [5, 10, 15, 20]);
    let last_metrics = log.iter().rfind(|e| e["event"] == "metrics").unwrap();
    assert_eq!(last_metrics["epoch"], 4, "{last_metrics}");
    // Cut at 10 steps, then resumed to 20: replica 1 restarts from rank 0's checkpoint.
    let cut = replicated(&dir.path().join("cut"), files.clone(), 10);
    let trace = Trace::default();
    run_pair(
        &cut,
        Traced::new(&cut, 0, &trace),
        Traced::new(&cut, 1, &trace),
    );
    let mut resumed = replicated(&dir.path().join("cut"), files.clone(), 20);
    resumed.paths = cut.paths.clone();
    let outcome = run_pair(
        &resumed,
        Traced::new(&resumed, 0, &trace),
        Traced::new(&resumed, 1, &trace),
    );
    assert_eq!((outcome.status, outcome.step), (RunStatus::Completed, 20));
    assert!(final_tensors(&resumed) == final_tensors(&straight));
    // The same data on one replica is another run; and its checkpoint cannot resume it.
    let mut alone = job(&dir.path().join("alone"), files, 20, 4, 5);
    let outcome = run_job::<B, _>(
        Traced::new(&alone, 0, &trace),
        &resumed,
        Default::default(),
        &CancelToken::new(),
        Vec::new(),
    )
    .unwrap();
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("2 replicas") && reason.contains("1 device"),
        "{reason}"
    );
    alone.paths = straight.paths.clone();
    let outcome = run_job::<B, _>(
        Traced::new(&alone, 0, &trace),
        &alone,
        Default::default(),
        &CancelToken::new(),
        Vec::new(),
    )
    .unwrap();
    let reason = outcome.reason.unwrap();
    assert!(reason.contains("2 replica(s)"), "{reason}");
}

#[test]
fn a_cancellation_stops_both_replicas_after_the_same_step_and_the_rerun_ends_like_an_unbroken_run()
{
    let dir = tempfile::tempdir().unwrap();
    let files = data(dir.path());
    let straight = replicated(&dir.path().join("straight"), files.clone(), 20);
    let trace = Trace::default();
    run_pair(
        &straight,
        Traced::new(&straight, 0, &trace),
        Traced::new(&straight, 1, &trace),
    );
    let cut = replicated(&dir.path().join("cut"), files, 20);
    let trace = Trace::default();
    let token = CancelToken::new();
    let mut rank0 = Traced::new(&cut, 0, &trace);
    rank0.trouble.cancel_at = Some((7, token.clone()));
    let outcome = run_cancellable(&cut, rank0, Traced::new(&cut, 1, &trace), &token);
    assert_eq!((outcome.status, outcome.step), (RunStatus::Cancelled, 8));
    // Each replica took steps 0 to 7, none after.
    for rank in 0..2 {
        let steps: Vec<usize> = trace
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _, _)| *r == rank)
            .map(|(_, step, _)| *step)
            .collect();
        assert_eq!(steps, (0..8).collect::<Vec<_>>(), "replica {rank}");
    }
    assert_eq!(
        latest_state_step(&cut),
        Some(8),
        "the cancelled job's checkpoint"
    );
    let outcome = run_pair(
        &cut,
        Traced::new(&cut, 0, &trace),
        Traced::new(&cut, 1, &trace),
    );
    assert_eq!((outcome.status, outcome.step), (RunStatus::Completed, 20));
    assert!(final_tensors(&cut) == final_tensors(&straight));
}

#[test]
fn a_failing_replica_fails_the_job_at_once_with_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let files = data(dir.path());
    let trace = Trace::default();
    type Script = fn(&mut Traced, &mut Traced);
    let cases: [(&str, Script, &str); 4] = [
        (
            "error",
            |_, r1| r1.trouble.fail_at = Some(3),
            "replica 1 of 2: train_step failed at step 3: scripted failure",
        ),
        (
            "panic",
            |_, r1| r1.trouble.panic_at = Some(3),
            "replica 1 of 2: its step panicked: scripted panic at step 3",
        ),
        (
            "no average",
            |_, r1| r1.skip_average_at = Some(3),
            "replica 1 of 2: the trainer called `StepContext::average_gradients` 0 times in step 4",
        ),
        (
            "rank 0",
            |r0, _| r0.trouble.fail_at = Some(3),
            "scripted failure at step 3",
        ),
    ];
    for (name, script, expected) in cases {
        let job = replicated(&dir.path().join(name), files.clone(), 40);
        let (mut rank0, mut rank1) = (Traced::new(&job, 0, &trace), Traced::new(&job, 1, &trace));
        script(&mut rank0, &mut rank1);
        let started = Instant::now();
        let outcome = run_pair(&job, rank0, rank1);
        // Far below the 600 s the peers would otherwise wait for each other.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            (outcome.status, outcome.step),
            (RunStatus::Failed, 3),
            "{name}"
        );
        let reason = outcome.reason.unwrap();
        assert!(reason.contains(expected), "{name}: {reason}");
        let log = events(&job.paths.events_path);
        assert_eq!(log.last().unwrap()["status"], "failed", "{name}");
        assert_eq!(
            latest_state_step(&job),
            None,
            "{name}: no checkpoint before step 5"
        );
    }
}

fn latest_state_step(job: &ResolvedJob) -> Option<usize> {
    latest_in(&job.paths.checkpoints_dir)
        .ok()
        .flatten()
        .map(|file| read::<JobPayload>(&file).unwrap().state.global_step)
}
