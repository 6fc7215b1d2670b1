//! A job runner whose trainer can crash on purpose: `mlp-faulty` is `mlp-classifier` with a
//! `fault` in its hyperparams, `{"at_step": K, "kind": "abort" | "panic" | "exit",
//! "once_marker": FILE}`: at step K its process aborts, panics or exits with status 3 (once
//! only when `once_marker` is given: the fault creates the file and does not strike while it
//! exists). It shows what `--isolate` is for, and the isolation tests use it.
//!
//! `cargo run --example faulty_runner -- --spec SPEC --trainer mlp-faulty --isolate`

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use serde::Deserialize;
use trainer::job::cli::{run, RunCli};
use trainer::job::mlp_classifier::{MlpBatch, MlpClassifier, MlpState};
use trainer::job::{
    HookResult, JobContext, JobSpec, Plugins, RecordBatch, Registry, SampleContext, StateDict,
    StepContext, StepHooks, StepResult,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fault {
    at_step: usize,
    kind: FaultKind,
    #[serde(default)]
    once_marker: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultKind {
    Abort,
    Panic,
    Exit,
}

struct Faulty {
    inner: MlpClassifier,
    fault: Option<Fault>,
}

impl Faulty {
    fn from_spec(spec: &JobSpec) -> HookResult<Self> {
        let mut inner_spec = spec.clone();
        let fault = match inner_spec
            .hyperparams
            .as_object_mut()
            .and_then(|h| h.remove("fault"))
        {
            Some(value) => Some(serde_json::from_value::<Fault>(value)?),
            None => None,
        };
        Ok(Self {
            inner: MlpClassifier::from_spec(&inner_spec)?,
            fault,
        })
    }

    fn strike(&self, step: usize) {
        let Some(fault) = &self.fault else { return };
        if fault.at_step != step {
            return;
        }
        if let Some(marker) = &fault.once_marker {
            if marker.exists() {
                return;
            }
            std::fs::write(marker, step.to_string()).expect("writing the fault marker");
        }
        match fault.kind {
            FaultKind::Abort => std::process::abort(),
            FaultKind::Panic => panic!("mlp-faulty: the fault at step {step}"),
            FaultKind::Exit => std::process::exit(3),
        }
    }
}

impl<B: AutodiffBackend> StepHooks<B> for Faulty {
    type State = MlpState<B>;
    type Batch = MlpBatch<B>;

    fn setup(&mut self, ctx: &JobContext<'_>) -> HookResult<()> {
        <MlpClassifier as StepHooks<B>>::setup(&mut self.inner, ctx)
    }
    fn configure(&mut self, ctx: &JobContext<'_>, device: &B::Device) -> HookResult<Self::State> {
        <MlpClassifier as StepHooks<B>>::configure(&mut self.inner, ctx, device)
    }
    fn metric_names(&self) -> Vec<String> {
        <MlpClassifier as StepHooks<B>>::metric_names(&self.inner)
    }
    fn prepare_batch(
        &mut self,
        state: &mut Self::State,
        batch: &RecordBatch,
        device: &B::Device,
    ) -> HookResult<Self::Batch> {
        self.inner.prepare_batch(state, batch, device)
    }
    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<B>> {
        self.strike(ctx.step);
        self.inner.train_step(state, batch, ctx)
    }
    fn state_dict(&self, state: &Self::State) -> HookResult<StateDict> {
        <MlpClassifier as StepHooks<B>>::state_dict(&self.inner, state)
    }
    fn load_state_dict(
        &mut self,
        state: &mut Self::State,
        dict: StateDict,
        device: &B::Device,
    ) -> HookResult<()> {
        self.inner.load_state_dict(state, dict, device)
    }
    fn sample(
        &mut self,
        state: &mut Self::State,
        ctx: &SampleContext<'_>,
    ) -> HookResult<Option<PathBuf>> {
        self.inner.sample(state, ctx)
    }
}

struct FaultyTrainers;

impl Plugins for FaultyTrainers {
    fn register<B: AutodiffBackend>(registry: &mut Registry<B>) {
        registry.register("mlp-faulty", Faulty::from_spec);
    }
}

trainer::program_allocator!();

fn main() -> ExitCode {
    run::<FaultyTrainers>(&RunCli::parse().args)
}
