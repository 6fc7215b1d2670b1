use std::path::PathBuf;

use crate::error::{JobError, Result};
use crate::spec::JobSpec;

/// The job spec file.
pub const ENV_SPEC_PATH: &str = "TRAINER_JOB_SPEC_PATH";
/// The trainer to run, overriding the spec's `trainer`.
pub const ENV_PLUGIN: &str = "TRAINER_PLUGIN";
/// Where checkpoints go (and where a rerun resumes from).
pub const ENV_CHECKPOINTS_DIR: &str = "TRAINER_CHECKPOINTS_DIR";
/// Where samples go.
pub const ENV_SAMPLES_DIR: &str = "TRAINER_SAMPLES_DIR";
/// The events file (JSON lines).
pub const ENV_EVENTS_PATH: &str = "TRAINER_EVENTS_PATH";
/// A file whose appearance cancels the run.
pub const ENV_CANCEL_PATH: &str = "TRAINER_CANCEL_PATH";

/// What the caller of a job says on top of the spec: the flags of `trainer run`. Each setting
/// is taken from the flag, else from its environment variable, else from the spec or the
/// default (`runs/<run_id>/...`); see `docs/job.md`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--spec` (else `TRAINER_JOB_SPEC_PATH`).
    pub spec_path: Option<PathBuf>,
    /// `--trainer` (else `TRAINER_PLUGIN`, else the spec's `trainer`).
    pub trainer: Option<String>,
    /// `--run-dir`: the folder of the defaults below (default `runs/<run_id>`).
    pub run_dir: Option<PathBuf>,
    /// `--checkpoints-dir` (else `TRAINER_CHECKPOINTS_DIR`, else `RUN_DIR/checkpoints`).
    pub checkpoints_dir: Option<PathBuf>,
    /// `--samples-dir` (else `TRAINER_SAMPLES_DIR`, else `RUN_DIR/samples`).
    pub samples_dir: Option<PathBuf>,
    /// `--events-path` (else `TRAINER_EVENTS_PATH`, else `RUN_DIR/events.jsonl`).
    pub events_path: Option<PathBuf>,
    /// `--cancel-file` (else `TRAINER_CANCEL_PATH`, else `RUN_DIR/CANCEL`).
    pub cancel_file: Option<PathBuf>,
}

/// Where a job's files go.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPaths {
    /// Checkpoints; a rerun resumes from the latest one here.
    pub checkpoints_dir: PathBuf,
    /// Samples.
    pub samples_dir: PathBuf,
    /// The events file.
    pub events_path: PathBuf,
    /// The cancel file.
    pub cancel_file: PathBuf,
}

/// A job ready to run: the checked spec, the trainer's name and the paths.
#[derive(Debug, Clone)]
pub struct ResolvedJob {
    /// The spec.
    pub spec: JobSpec,
    /// The trainer to run.
    pub trainer: String,
    /// Where its files go.
    pub paths: JobPaths,
}

impl RunOptions {
    /// Resolves the settings against the process environment.
    pub fn resolve(&self) -> Result<ResolvedJob> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Resolves the settings with `env` as the environment (empty values count as unset).
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedJob> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let path = |flag: &Option<PathBuf>, name: &str| {
            flag.clone().or_else(|| env(name).map(PathBuf::from))
        };
        let spec_path = path(&self.spec_path, ENV_SPEC_PATH).ok_or_else(|| JobError::Setting {
            name: "--spec".into(),
            message: format!("no job spec: give `--spec FILE` or set {ENV_SPEC_PATH}"),
        })?;
        let spec = JobSpec::from_file(&spec_path)?;
        let trainer = self
            .trainer
            .clone()
            .or_else(|| env(ENV_PLUGIN))
            .unwrap_or_else(|| spec.trainer.clone());
        let run_dir = self
            .run_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&spec.run_id));
        let paths = JobPaths {
            checkpoints_dir: path(&self.checkpoints_dir, ENV_CHECKPOINTS_DIR)
                .unwrap_or_else(|| run_dir.join("checkpoints")),
            samples_dir: path(&self.samples_dir, ENV_SAMPLES_DIR)
                .unwrap_or_else(|| run_dir.join("samples")),
            events_path: path(&self.events_path, ENV_EVENTS_PATH)
                .unwrap_or_else(|| run_dir.join("events.jsonl")),
            cancel_file: path(&self.cancel_file, ENV_CANCEL_PATH)
                .unwrap_or_else(|| run_dir.join("CANCEL")),
        };
        Ok(ResolvedJob {
            spec,
            trainer,
            paths,
        })
    }
}
