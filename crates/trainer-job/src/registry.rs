use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use trainer_core::callback::Callback;

use crate::cancel::CancelToken;
use crate::error::{HookResult, JobError, Result};
use crate::hooks::StepHooks;
use crate::isolate::{ChildExit, ChildHooks, Contract};
use crate::runtime::{run_job, run_job_replicated, JobOutcome};
use crate::settings::ResolvedJob;
use crate::spec::JobSpec;

type Device<B> = <B as burn::tensor::backend::BackendTypes>::Device;
type Runner<B> = Box<
    dyn Fn(
        &ResolvedJob,
        Device<B>,
        Vec<Device<B>>,
        &CancelToken,
        Vec<Box<dyn Callback>>,
    ) -> Result<JobOutcome>,
>;
type Server<B> = Box<dyn Fn(&ResolvedJob, Device<B>, &Contract) -> Result<()>>;

/// Trainers by name, for one backend: each entry makes a trainer from the job spec and runs it
/// (in process), or serves a runtime's calls with it (as an isolated job's child process).
pub struct Registry<B: AutodiffBackend> {
    runners: BTreeMap<String, Runner<B>>,
    servers: BTreeMap<String, Server<B>>,
}

impl<B: AutodiffBackend> Default for Registry<B> {
    fn default() -> Self {
        Self {
            runners: BTreeMap::new(),
            servers: BTreeMap::new(),
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
    /// spec; an error from it (bad hyperparams) fails the job before it starts. A job of several
    /// `replicas` makes one trainer per replica, each used on its own thread (hence `Send`).
    pub fn register<H, F>(&mut self, name: &str, make: F) -> &mut Self
    where
        H: StepHooks<B> + Send + 'static,
        F: Fn(&JobSpec) -> HookResult<H> + 'static,
    {
        let make = std::rc::Rc::new(make);
        let make_for_child = make.clone();
        let child_name = name.to_string();
        self.servers.insert(
            name.to_string(),
            Box::new(move |job, device, contract| {
                let hooks = make_for_child(&job.spec).map_err(|e| {
                    JobError::spec(
                        "(hyperparams)",
                        format!("hyperparams of {child_name}"),
                        e.to_string(),
                    )
                })?;
                crate::isolate::serve::<B, H>(hooks, job, device, contract)
            }),
        );
        let name_owned = name.to_string();
        self.runners.insert(
            name.to_string(),
            Box::new(move |job, device, replica_devices, cancel, callbacks| {
                let made = |_| {
                    make(&job.spec).map_err(|e| {
                        JobError::spec(
                            "(hyperparams)",
                            format!("hyperparams of {name_owned}"),
                            e.to_string(),
                        )
                    })
                };
                let hooks = made(()).and_then(|hooks| {
                    let replicas = replica_devices
                        .into_iter()
                        .map(|device| made(()).map(|hooks| (hooks, device)))
                        .collect::<Result<Vec<_>>>()?;
                    Ok((hooks, replicas))
                });
                match hooks {
                    Ok((hooks, replicas)) if replicas.is_empty() => {
                        run_job::<B, H>(hooks, job, device, cancel, callbacks)
                    }
                    Ok((hooks, replicas)) => {
                        run_job_replicated::<B, H>(hooks, replicas, job, device, cancel, callbacks)
                    }
                    Err(error) => {
                        crate::runtime::report_unstarted(&job.paths.events_path, &error)?;
                        Ok(JobOutcome::unstarted(&error))
                    }
                }
            }),
        );
        self
    }

    /// Serves an isolated job's calls with its trainer: what a child process does.
    pub fn serve(&self, job: &ResolvedJob, device: B::Device, contract: &Contract) -> Result<()> {
        let server = self
            .servers
            .get(&job.trainer)
            .ok_or_else(|| JobError::UnknownTrainer {
                name: job.trainer.clone(),
                known: self.names(),
            })?;
        server(job, device, contract)
    }

    /// Runs the job with its trainer in a child process: this program again, with the same
    /// arguments and the contract in its environment (see [`crate::isolate`]). A child that
    /// dies is started again from the last checkpoint up to `max_restarts` times; `callbacks`
    /// join the first session only.
    pub fn run_isolated(
        &self,
        job: &ResolvedJob,
        device: B::Device,
        device_request: &str,
        cancel: &CancelToken,
        callbacks: Vec<Box<dyn Callback>>,
    ) -> Result<JobOutcome> {
        // A program started as a trainer process that did not hand its contract to
        // `serve_contract` would start a trainer process of its own, and so on: refuse.
        if std::env::var_os(crate::isolate::CONTRACT_ENV).is_some() {
            return Err(JobError::Setting {
                name: crate::isolate::CONTRACT_ENV.into(),
                message: "this program was started as an isolated job's trainer process but \
                          runs a job instead of serving the contract: call \
                          `trainer_job::serve_contract` (as `cli::run` does) first in `main`"
                    .into(),
            });
        }
        if !self.servers.contains_key(&job.trainer) {
            return Err(JobError::UnknownTrainer {
                name: job.trainer.clone(),
                known: self.names(),
            });
        }
        let run_dir = job
            .paths
            .events_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let (contract, contract_path) = Contract::write(
            job,
            device_request,
            &run_dir.join(crate::isolate::ISOLATE_DIR),
        )?;
        let program = std::env::current_exe().map_err(|source| JobError::Io {
            action: "finding this program for",
            path: "the trainer process".into(),
            source,
        })?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut callbacks = Some(callbacks);
        let mut restarts: Vec<String> = Vec::new();
        loop {
            let exit = ChildExit::default();
            let hooks = match ChildHooks::spawn(
                &program,
                &args,
                contract.clone(),
                &contract_path,
                exit.clone(),
            ) {
                Ok(hooks) => hooks,
                Err(e) => {
                    let error = JobError::Setting {
                        name: "--isolate".into(),
                        message: e.to_string(),
                    };
                    crate::runtime::report_unstarted(&job.paths.events_path, &error)?;
                    return Ok(JobOutcome::unstarted(&error));
                }
            };
            let outcome = run_job::<B, ChildHooks>(
                hooks,
                job,
                device.clone(),
                cancel,
                callbacks.take().unwrap_or_default(),
            )?;
            let died = exit.died();
            if outcome.status == trainer_core::event::RunStatus::Failed
                && restarts.len() < job.spec.max_restarts
                && cancel.reason().is_none()
            {
                if let Some(how) = died {
                    log::warn!(
                        "the trainer process {how}; restart {} of {} from the last checkpoint",
                        restarts.len() + 1,
                        job.spec.max_restarts
                    );
                    restarts.push(how);
                    continue;
                }
            }
            let mut outcome = outcome;
            outcome.restarts = restarts;
            return Ok(outcome);
        }
    }

    /// The registered names.
    pub fn names(&self) -> Vec<String> {
        self.runners.keys().cloned().collect()
    }

    /// Runs the job's trainer on `device`, and its replicas 1, 2, ... on `replica_devices`
    /// (one fewer than the spec's `replicas`; empty for one).
    pub fn run(
        &self,
        job: &ResolvedJob,
        device: B::Device,
        replica_devices: Vec<B::Device>,
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
        runner(job, device, replica_devices, cancel, callbacks)
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

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;

    #[test]
    fn a_trainer_process_that_runs_an_isolated_job_is_refused_instead_of_forking_again() {
        let dir = tempfile::tempdir().unwrap();
        let spec = serde_json::json!({
            "trainer_api_version": "v1", "run_id": "r", "trainer": "mlp-classifier",
            "max_steps": 2, "metric_every": 1, "checkpoint_every": 1, "mock_batches": 1,
            "isolation": "subprocess",
            "dataset": {"batch_size": 2, "columns": ["x", "label"]}
        });
        let job = ResolvedJob {
            spec: JobSpec::parse(&spec.to_string(), "test").unwrap(),
            trainer: "mlp-classifier".into(),
            paths: crate::JobPaths {
                checkpoints_dir: dir.path().join("checkpoints"),
                samples_dir: dir.path().join("samples"),
                events_path: dir.path().join("events.jsonl"),
                cancel_file: dir.path().join("CANCEL"),
            },
        };
        // No other test of this binary reads the variable.
        std::env::set_var(
            crate::isolate::CONTRACT_ENV,
            dir.path().join("contract.json"),
        );
        let result = Registry::<B>::with_builtins().run_isolated(
            &job,
            Default::default(),
            "ndarray",
            &CancelToken::new(),
            Vec::new(),
        );
        std::env::remove_var(crate::isolate::CONTRACT_ENV);
        let error = result.unwrap_err().to_string();
        assert!(error.contains("serve_contract"), "{error}");
        assert!(!dir.path().join("isolate").exists(), "nothing started");
    }
}
