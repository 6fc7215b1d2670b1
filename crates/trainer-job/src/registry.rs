use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::Callback;

use crate::cancel::CancelToken;
use crate::error::{HookResult, JobError, Result};
use crate::hooks::StepHooks;
use crate::runtime::{run_job, JobOutcome};
use crate::settings::ResolvedJob;
use crate::spec::JobSpec;

type Device<B> = <B as burn::tensor::backend::BackendTypes>::Device;
type Runner<B> = Box<
    dyn Fn(&ResolvedJob, Device<B>, &CancelToken, Vec<Box<dyn Callback>>) -> Result<JobOutcome>,
>;

/// Trainers by name, for one backend: each entry makes a trainer from the job spec and runs it.
pub struct Registry<B: AutodiffBackend> {
    runners: BTreeMap<String, Runner<B>>,
}

impl<B: AutodiffBackend> Default for Registry<B> {
    fn default() -> Self {
        Self {
            runners: BTreeMap::new(),
        }
    }
}

impl<B: AutodiffBackend> Registry<B> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in trainers (`mlp-classifier`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        registry.register(
            crate::mlp_classifier::NAME,
            crate::mlp_classifier::MlpClassifier::from_spec,
        );
        registry
    }

    /// Registers `make` under `name` (replacing an earlier entry of that name). `make` gets the
    /// spec; an error from it (bad hyperparams) fails the job before it starts.
    pub fn register<H, F>(&mut self, name: &str, make: F) -> &mut Self
    where
        H: StepHooks<B> + 'static,
        F: Fn(&JobSpec) -> HookResult<H> + 'static,
    {
        let name_owned = name.to_string();
        self.runners.insert(
            name.to_string(),
            Box::new(move |job, device, cancel, callbacks| {
                let hooks = make(&job.spec).map_err(|e| {
                    JobError::spec(
                        "(hyperparams)",
                        format!("hyperparams of {name_owned}"),
                        e.to_string(),
                    )
                });
                match hooks {
                    Ok(hooks) => run_job::<B, H>(hooks, job, device, cancel, callbacks),
                    Err(error) => {
                        crate::runtime::report_unstarted(&job.paths.events_path, &error)?;
                        Ok(JobOutcome::unstarted(&error))
                    }
                }
            }),
        );
        self
    }

    /// The registered names.
    pub fn names(&self) -> Vec<String> {
        self.runners.keys().cloned().collect()
    }

    /// Runs the job's trainer.
    pub fn run(
        &self,
        job: &ResolvedJob,
        device: B::Device,
        cancel: &CancelToken,
        callbacks: Vec<Box<dyn Callback>>,
    ) -> Result<JobOutcome> {
        let runner = self
            .runners
            .get(&job.trainer)
            .ok_or_else(|| JobError::UnknownTrainer {
                name: job.trainer.clone(),
                known: self.names(),
            })?;
        runner(job, device, cancel, callbacks)
    }
}

/// Registers a program's trainers for whichever backend the device choice picks: implement it
/// on a unit struct and hand it to [`crate::launch`].
pub trait Plugins {
    /// Adds the trainers to `registry` (which already has the built-in ones).
    fn register<B: AutodiffBackend>(registry: &mut Registry<B>);
}

/// No trainers beyond the built-in ones.
pub struct Builtins;

impl Plugins for Builtins {
    fn register<B: AutodiffBackend>(_registry: &mut Registry<B>) {}
}
