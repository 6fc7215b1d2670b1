//! `trainer run`: the job runtime's command line, reusable by programs that register their own
//! trainers.
//!
//! ```no_run
//! use burn::tensor::backend::AutodiffBackend;
//! use clap::Parser;
//! use trainer_job::cli::{run, RunCli};
//! use trainer_job::{Plugins, Registry};
//!
//! struct MyTrainers;
//!
//! impl Plugins for MyTrainers {
//!     fn register<B: AutodiffBackend>(registry: &mut Registry<B>) {
//!         // registry.register("my-trainer", MyHooks::from_spec);
//!         let _ = registry;
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     run::<MyTrainers>(&RunCli::parse().args)
//! }
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{launch, CancelToken, Plugins, RunOptions, EXIT_UNSTARTED};
use trainer_gpu::{DeviceRequest, DEVICE_ENV};

/// The environment variable `--replica-devices` overrides.
pub const REPLICA_DEVICES_ENV: &str = "TRAINER_REPLICA_DEVICES";

/// The flags of `trainer run`. Each overrides its environment variable, which overrides the
/// spec or the default (`docs/job.md`).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The job spec (else `TRAINER_JOB_SPEC_PATH`).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// The registered trainer to run (else `TRAINER_PLUGIN`, else the spec's `trainer`).
    #[arg(long)]
    pub trainer: Option<String>,
    /// The folder of the default paths below (default `runs/<run_id>`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Checkpoints folder; a rerun resumes from its latest (else `TRAINER_CHECKPOINTS_DIR`,
    /// else `RUN_DIR/checkpoints`).
    #[arg(long)]
    pub checkpoints_dir: Option<PathBuf>,
    /// Samples folder (else `TRAINER_SAMPLES_DIR`, else `RUN_DIR/samples`).
    #[arg(long)]
    pub samples_dir: Option<PathBuf>,
    /// Events file, JSON lines (else `TRAINER_EVENTS_PATH`, else `RUN_DIR/events.jsonl`).
    #[arg(long)]
    pub events_path: Option<PathBuf>,
    /// A file whose appearance cancels the job (else `TRAINER_CANCEL_PATH`, else
    /// `RUN_DIR/CANCEL`).
    #[arg(long)]
    pub cancel_file: Option<PathBuf>,
    /// `cpu` (flex when compiled in, else ndarray), `flex`, `ndarray`, `wgpu`, `wgpu:N` or `auto`
    /// (`TRAINER_DEVICE` overrides it).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The devices of replicas 1, 2, ... of a job of several `replicas`, comma-separated
    /// (`wgpu:1,wgpu:2`; else `TRAINER_REPLICA_DEVICES`; else every replica on --device: the
    /// CPU shared, or a logical wgpu device each).
    #[arg(long, value_delimiter = ',')]
    pub replica_devices: Vec<String>,
    /// Runs the trainer's step code in a child process (the spec's `"isolation":
    /// "subprocess"`): a crash there fails the job with the child's exit status, checkpoints
    /// intact; `max_restarts` in the spec starts it again from the last checkpoint.
    #[arg(long)]
    pub isolate: bool,
}

/// The standalone form of [`RunArgs`], for a runner program's `main`.
#[derive(Debug, clap::Parser)]
#[command(about = "Run a training job from a JSON job spec")]
pub struct RunCli {
    /// The flags.
    #[command(flatten)]
    pub args: RunArgs,
}

/// Runs the job the flags and environment describe, with the built-in trainers and `P`'s, and
/// returns the exit status: 0 completed, 1 failed, 130 cancelled, 2 not started (bad spec,
/// setting, trainer name or device). The outcome is printed as one JSON line on stdout.
pub fn run<P: Plugins>(args: &RunArgs) -> ExitCode {
    // Started by a runtime as an isolated job's trainer process.
    if let Some(contract) = std::env::var_os(crate::isolate::CONTRACT_ENV) {
        return match crate::serve_contract::<P>(std::path::Path::new(&contract)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trainer process: {e}");
                ExitCode::from(1)
            }
        };
    }
    let options = RunOptions {
        spec_path: args.spec.clone(),
        trainer: args.trainer.clone(),
        run_dir: args.run_dir.clone(),
        checkpoints_dir: args.checkpoints_dir.clone(),
        samples_dir: args.samples_dir.clone(),
        events_path: args.events_path.clone(),
        cancel_file: args.cancel_file.clone(),
    };
    let unstarted = |message: String| {
        eprintln!("trainer run: {message}");
        ExitCode::from(EXIT_UNSTARTED as u8)
    };
    let mut job = match options.resolve() {
        Ok(job) => job,
        Err(e) => return unstarted(e.to_string()),
    };
    if args.isolate {
        job.spec.isolation = crate::Isolation::Subprocess;
        // The spec was checked before: `--isolate` must pass the same checks (`distributed`).
        if let Err(e) = job.spec.validate("--isolate") {
            return unstarted(e.to_string());
        }
    }
    let request = match std::env::var(DEVICE_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| args.device.clone())
        .parse::<DeviceRequest>()
    {
        Ok(request) => request,
        Err(e) => return unstarted(e.to_string()),
    };
    let replica_devices = match args.replica_devices.is_empty() {
        false => args.replica_devices.clone(),
        true => std::env::var(REPLICA_DEVICES_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let replica_requests = match replica_devices
        .iter()
        .map(|name| name.trim().parse::<DeviceRequest>())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(requests) => requests,
        Err(e) => return unstarted(format!("--replica-devices: {e}")),
    };
    let cancel = match CancelToken::new()
        .with_file(&job.paths.cancel_file)
        .with_signals()
    {
        Ok(cancel) => cancel,
        Err(e) => return unstarted(e.to_string()),
    };
    match launch::<P>(&job, request, &replica_requests, &cancel) {
        Ok(outcome) => {
            let line = serde_json::json!({
                "run_id": job.spec.run_id,
                "status": outcome.status,
                "step": outcome.step,
                "restarts": outcome.restarts,
                "reason": outcome.reason,
                "data_wait_fraction": outcome.data_wait_fraction,
                "events": job.paths.events_path,
                "checkpoints": job.paths.checkpoints_dir,
            });
            println!("{line}");
            if let Some(reason) = &outcome.reason {
                eprintln!("trainer run: {:?}: {reason}", outcome.status);
            }
            ExitCode::from(outcome.exit_code() as u8)
        }
        Err(e) => unstarted(e.to_string()),
    }
}
