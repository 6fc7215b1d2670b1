//! The contract file the runtime hands its child process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{JobError, Result};
use crate::settings::{JobPaths, ResolvedJob};
use crate::spec::JobSpec;

/// The contract versions this runtime writes and reads.
pub const CONTRACT_VERSIONS: [&str; 1] = ["v1"];

/// The folder, in the run folder (beside the events file), of the contract, the spec the child
/// reads, the batch file and the state file.
pub const ISOLATE_DIR: &str = "isolate";

/// What a child process is told: which trainer, which job, where the batches, state dicts,
/// checkpoints, samples and events are. Written as JSON by the runtime before it starts the
/// child; every path is absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// `"v1"`; a child refuses any other, naming the ones it reads.
    pub contract_version: String,
    /// The registered trainer to run.
    pub trainer_plugin: String,
    /// The job spec, as the runtime resolved it (data paths absolute).
    pub job_spec_path: PathBuf,
    /// The Arrow IPC file each step's batch is written to before the step is called (and a
    /// mock batch is read from).
    pub arrow_ipc_path: PathBuf,
    /// The MessagePack file state dicts cross through.
    pub state_path: PathBuf,
    /// The runtime's checkpoints folder (the child writes only into the artifacts folders it
    /// is given).
    pub checkpoints_dir: PathBuf,
    /// Where the child's samples go.
    pub samples_dir: PathBuf,
    /// The runtime's events file (the runtime alone writes it).
    pub events_path: PathBuf,
    /// The device the child uses, as `--device` spells it (the runtime's own choice).
    pub device: String,
}

/// Makes a path absolute against the working directory, without touching the file system.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Contract {
    /// Writes the contract and the resolved spec for `job` into `dir` and returns the contract
    /// and its path.
    pub fn write(job: &ResolvedJob, device: &str, dir: &Path) -> Result<(Self, PathBuf)> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| JobError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let dir = absolute(dir);
        let mut spec = job.spec.clone();
        for file in &mut spec.dataset.parquet_paths {
            *file = absolute(file);
        }
        if let Some(crate::artifacts::ArtifactsSpec::Dir { path, .. }) = &mut spec.artifacts {
            *path = absolute(path);
        }
        let spec_path = dir.join("spec.json");
        let text = serde_json::to_string_pretty(&spec).expect("a spec serializes");
        std::fs::write(&spec_path, text).map_err(io("writing", &spec_path))?;
        let contract = Contract {
            contract_version: CONTRACT_VERSIONS[0].into(),
            trainer_plugin: job.trainer.clone(),
            job_spec_path: spec_path,
            arrow_ipc_path: dir.join("batch.arrow"),
            state_path: dir.join("state.msgpack"),
            checkpoints_dir: absolute(&job.paths.checkpoints_dir),
            samples_dir: absolute(&job.paths.samples_dir),
            events_path: absolute(&job.paths.events_path),
            device: device.to_string(),
        };
        let path = dir.join("contract.json");
        let text = serde_json::to_string_pretty(&contract).expect("a contract serializes");
        std::fs::write(&path, text).map_err(io("writing", &path))?;
        Ok((contract, path))
    }

    /// Reads and checks a contract file: its version first, then its fields.
    pub fn read(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Io {
            action: "reading the contract",
            path: path.to_path_buf(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| JobError::SpecSyntax {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        match value.get("contract_version").and_then(|v| v.as_str()) {
            Some(v) if CONTRACT_VERSIONS.contains(&v) => {}
            other => {
                return Err(JobError::spec(
                    &origin,
                    "contract_version",
                    format!(
                        "{} is not supported; this program reads {}",
                        other.map_or("a missing version".to_string(), |v| format!("{v:?}")),
                        CONTRACT_VERSIONS.join(", ")
                    ),
                ))
            }
        }
        serde_json::from_value(value)
            .map_err(|e| JobError::spec(&origin, "(contract)", e.to_string()))
    }

    /// The job the contract describes: its spec (checked) and paths.
    pub fn job(&self) -> Result<ResolvedJob> {
        let origin = self.job_spec_path.display().to_string();
        let text = std::fs::read_to_string(&self.job_spec_path).map_err(|source| JobError::Io {
            action: "reading job spec",
            path: self.job_spec_path.clone(),
            source,
        })?;
        Ok(ResolvedJob {
            spec: JobSpec::parse(&text, &origin)?,
            trainer: self.trainer_plugin.clone(),
            paths: JobPaths {
                checkpoints_dir: self.checkpoints_dir.clone(),
                samples_dir: self.samples_dir.clone(),
                events_path: self.events_path.clone(),
                // The runtime alone watches for cancellation.
                cancel_file: self.job_spec_path.with_file_name("never-cancel"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &Path) -> ResolvedJob {
        let spec = serde_json::json!({
            "trainer_api_version": "v1", "run_id": "r", "trainer": "mlp-classifier",
            "max_steps": 4, "metric_every": 2, "checkpoint_every": 2, "mock_batches": 2,
            "dataset": {"batch_size": 4, "columns": ["x", "label"]}
        });
        ResolvedJob {
            spec: JobSpec::parse(&spec.to_string(), "test").unwrap(),
            trainer: "mlp-classifier".into(),
            paths: JobPaths {
                checkpoints_dir: dir.join("checkpoints"),
                samples_dir: dir.join("samples"),
                events_path: dir.join("events.jsonl"),
                cancel_file: dir.join("CANCEL"),
            },
        }
    }

    #[test]
    fn a_contract_round_trips_and_another_version_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path());
        let (contract, path) = Contract::write(&job, "cpu", &dir.path().join("isolate")).unwrap();
        assert_eq!(Contract::read(&path).unwrap(), contract);
        assert!(contract.arrow_ipc_path.is_absolute());
        let back = contract.job().unwrap();
        assert_eq!(back.spec, job.spec);
        assert_eq!(back.trainer, "mlp-classifier");

        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        value["contract_version"] = "v2".into();
        std::fs::write(&path, value.to_string()).unwrap();
        let error = Contract::read(&path).unwrap_err().to_string();
        assert!(error.contains("\"v2\"") && error.contains("v1"), "{error}");
        value["contract_version"] = "v1".into();
        value["surprise"] = 1.into();
        std::fs::write(&path, value.to_string()).unwrap();
        let error = Contract::read(&path).unwrap_err().to_string();
        assert!(error.contains("surprise"), "{error}");
    }
}
