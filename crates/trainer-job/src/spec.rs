use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trainer_core::schedule::ScheduleConfig;

use crate::artifacts::ArtifactsSpec;
use crate::error::{JobError, Result};

/// The `trainer_api_version`s this runtime reads.
pub const SUPPORTED_API_VERSIONS: [&str; 1] = ["v1"];

/// A training job, as written in a job spec file (JSON). Every field is documented in
/// `docs/job.md`; unknown fields are errors.
///
/// ```
/// let spec = trainer_job::JobSpec::parse(r#"{
///     "trainer_api_version": "v1", "run_id": "digits-1", "trainer": "mlp-classifier",
///     "max_steps": 100, "metric_every": 10, "checkpoint_every": 50, "seed": 7,
///     "hyperparams": {"learning_rate": 0.01},
///     "dataset": {"parquet_paths": ["digits.parquet"], "batch_size": 32}
/// }"#, "inline").unwrap();
/// assert_eq!(spec.dataset.batch_size, 32);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The spec's version: `"v1"`.
    pub trainer_api_version: String,
    /// The run's name: letters, digits, `-`, `_` and `.`; it names the default run folder.
    pub run_id: String,
    /// The registered trainer to run (`TRAINER_PLUGIN` and `--trainer` override it).
    pub trainer: String,
    /// Steps to train for.
    pub max_steps: usize,
    /// Emit the metrics every this many steps.
    pub metric_every: usize,
    /// Write a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: usize,
    /// Make a sample every this many steps, if the trainer makes samples.
    #[serde(default)]
    pub sample_every: Option<usize>,
    /// Who runs the job (carried into the events, not used otherwise).
    #[serde(default)]
    pub owner: Option<String>,
    /// The code release the job runs (carried into the events, not used otherwise).
    #[serde(default)]
    pub release_ref: Option<String>,
    /// Seeds the data order and the trainer's random draws.
    #[serde(default)]
    pub seed: u64,
    /// Free JSON for the trainer; the runtime reads `learning_rate` (default 0.001) and
    /// `lr_schedule` (a schedule config, PyTorch names) from it.
    #[serde(default = "empty_object")]
    pub hyperparams: serde_json::Value,
    /// The training data.
    pub dataset: DatasetSpec,
    /// Checkpoints to keep in the checkpoints folder (the newest ones); all when absent.
    #[serde(default)]
    pub keep_checkpoints: Option<usize>,
    /// Smoke runs without data: this many synthetic batches per epoch, made by the trainer's
    /// `mock_batch` hook; `dataset.parquet_paths` is then not read.
    #[serde(default)]
    pub mock_batches: Option<usize>,
    /// Where checkpoints, their files and samples are uploaded (see `docs/job.md`); nowhere
    /// when absent.
    #[serde(default)]
    pub artifacts: Option<ArtifactsSpec>,
    /// Where the trainer's step code runs: `"in_process"` (default) or `"subprocess"` (a child
    /// process; `trainer run --isolate` sets it). See `docs/job.md`, "Isolation".
    #[serde(default)]
    pub isolation: Isolation,
    /// With `"subprocess"`: how often a child that died (crash, abort, kill) is started again
    /// from the last checkpoint before the job fails (default 0; unused in process).
    #[serde(default)]
    pub max_restarts: usize,
    /// This job as one node of a data-parallel run over several machines; one machine when
    /// absent. See `docs/job.md`, "Distributed".
    #[serde(default)]
    pub distributed: Option<crate::distributed::DistributedSpec>,
    /// Replicas of the trainer in this process, data-parallel (default 1): one per device
    /// (`trainer run --replica-devices`), each on its own thread and share of every epoch,
    /// averaging their gradients every step. See `docs/job.md`, "Replicas".
    #[serde(default = "one_replica", skip_serializing_if = "is_one_replica")]
    pub replicas: usize,
}

fn one_replica() -> usize {
    1
}

fn is_one_replica(replicas: &usize) -> bool {
    *replicas == 1
}

/// Where a job's step code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In the runtime's process.
    #[default]
    InProcess,
    /// In a child process that the runtime drives through the subprocess contract.
    Subprocess,
}

/// The training data of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Parquet files, read in this order before shuffling; relative paths are relative to the
    /// spec file's folder.
    #[serde(default)]
    pub parquet_paths: Vec<PathBuf>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Batches prepared ahead on the feed's thread (default 4).
    #[serde(default = "default_readahead")]
    pub readahead: usize,
    /// The columns to read (the projection); all columns when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// The most batches a feed reads ahead (each is held in memory).
pub const MAX_READAHEAD: usize = 1024;
/// The most rows in one batch.
pub const MAX_BATCH_SIZE: usize = 1 << 24;

fn default_readahead() -> usize {
    4
}

impl JobSpec {
    /// Reads and checks a spec file; relative data paths become relative to its folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Io {
            action: "reading job spec",
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in &mut spec.dataset.parquet_paths {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        if let Some(ArtifactsSpec::Dir { path, .. }) = &mut spec.artifacts {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(spec)
    }

    /// Parses and checks a spec; `origin` names it in errors. The version is checked first, so
    /// a spec of another version gets that message rather than one about its fields.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| JobError::SpecSyntax {
                origin: origin.into(),
                message: e.to_string(),
            })?;
        let Some(object) = value.as_object() else {
            return Err(JobError::spec(
                origin,
                "(top level)",
                "expected a JSON object",
            ));
        };
        match object.get("trainer_api_version") {
            None => {
                return Err(JobError::spec(
                    origin,
                    "trainer_api_version",
                    format!("missing; give one of {}", SUPPORTED_API_VERSIONS.join(", ")),
                ))
            }
            Some(serde_json::Value::String(v)) if SUPPORTED_API_VERSIONS.contains(&v.as_str()) => {}
            Some(other) => {
                return Err(JobError::UnsupportedVersion {
                    origin: origin.into(),
                    found: other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_string),
                    supported: SUPPORTED_API_VERSIONS.to_vec(),
                })
            }
        }
        let spec: JobSpec = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            // A missing or unknown field is reported at its parent; the message names it.
            JobError::spec(
                origin,
                if field == "." {
                    "(top level)".to_string()
                } else {
                    field
                },
                message,
            )
        })?;
        spec.validate(origin)?;
        Ok(spec)
    }

    /// Checks the values serde cannot: ranges, names, the schedule.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let positive = |field: &str, value: usize| {
            if value == 0 {
                Err(JobError::spec(origin, field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        if self.run_id.is_empty()
            || !self
                .run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || self.run_id.starts_with('.')
        {
            return Err(JobError::spec(
                origin,
                "run_id",
                format!(
                    "{:?}: use letters, digits, '-', '_' and '.', not starting with '.'",
                    self.run_id
                ),
            ));
        }
        if self.trainer.is_empty() {
            return Err(JobError::spec(
                origin,
                "trainer",
                "must name a registered trainer",
            ));
        }
        if let Some(distributed) = &self.distributed {
            distributed.validate(self, origin)?;
        }
        crate::distributed::validate_replicas(self, origin)?;
        positive("max_steps", self.max_steps)?;
        positive("metric_every", self.metric_every)?;
        positive("checkpoint_every", self.checkpoint_every)?;
        if let Some(every) = self.sample_every {
            positive("sample_every", every)?;
        }
        positive("dataset.batch_size", self.dataset.batch_size)?;
        positive("dataset.readahead", self.dataset.readahead)?;
        if self.dataset.readahead > MAX_READAHEAD {
            return Err(JobError::spec(
                origin,
                "dataset.readahead",
                format!(
                    "{} batches: at most {MAX_READAHEAD} (each is held in memory)",
                    self.dataset.readahead
                ),
            ));
        }
        if self.dataset.batch_size > MAX_BATCH_SIZE {
            return Err(JobError::spec(
                origin,
                "dataset.batch_size",
                format!("{} rows: at most {MAX_BATCH_SIZE}", self.dataset.batch_size),
            ));
        }
        if let Some(columns) = &self.dataset.columns {
            if columns.is_empty() {
                return Err(JobError::spec(
                    origin,
                    "dataset.columns",
                    "must name at least one column (or be left out for all)",
                ));
            }
            if let Some(name) = columns
                .iter()
                .enumerate()
                .find_map(|(i, c)| columns[..i].contains(c).then_some(c))
            {
                return Err(JobError::spec(
                    origin,
                    "dataset.columns",
                    format!("names {name:?} twice"),
                ));
            }
        }
        if self.keep_checkpoints == Some(0) {
            return Err(JobError::spec(
                origin,
                "keep_checkpoints",
                "must be at least 1 (or left out to keep all)",
            ));
        }
        match self.mock_batches {
            Some(0) => return Err(JobError::spec(origin, "mock_batches", "must be at least 1")),
            Some(_) => {}
            None if self.dataset.parquet_paths.is_empty() => {
                return Err(JobError::spec(
                    origin,
                    "dataset.parquet_paths",
                    "names no file; give at least one, or `mock_batches` for a run without data",
                ))
            }
            None => {}
        }
        let Some(hyperparams) = self.hyperparams.as_object() else {
            return Err(JobError::spec(
                origin,
                "hyperparams",
                "must be a JSON object",
            ));
        };
        let learning_rate = match hyperparams.get("learning_rate") {
            None => DEFAULT_LEARNING_RATE,
            Some(v) => match v.as_f64() {
                Some(lr) if lr.is_finite() && lr >= 0.0 => lr,
                _ => {
                    return Err(JobError::spec(
                        origin,
                        "hyperparams.learning_rate",
                        format!("{v} is not a finite number >= 0"),
                    ))
                }
            },
        };
        let schedule =
            match self.schedule_config(origin)? {
                Some(config) => Some(config.build(learning_rate).map_err(|e| {
                    JobError::spec(origin, "hyperparams.lr_schedule", e.to_string())
                })?),
                None => None,
            };
        if self.max_restarts > MAX_RESTARTS {
            return Err(JobError::spec(
                origin,
                "max_restarts",
                format!("{}: at most {MAX_RESTARTS}", self.max_restarts),
            ));
        }
        if let Some(artifacts) = &self.artifacts {
            artifacts
                .check()
                .map_err(|(field, message)| JobError::spec(origin, field, message))?;
        }
        let monitor = self.schedule_monitor(origin)?;
        if hyperparams.contains_key(MONITOR_FIELD) && !schedule.is_some_and(|s| s.needs_metric()) {
            return Err(JobError::spec(
                origin,
                "hyperparams.lr_schedule_monitor",
                format!(
                    "{monitor:?} is read only by a plateau schedule (ReduceLROnPlateau), and \
                     `hyperparams.lr_schedule` has none"
                ),
            ));
        }
        Ok(())
    }

    /// `hyperparams.lr_schedule_monitor`: the step metric whose mean over each `metric_every`
    /// window steps a plateau schedule; `DEFAULT_SCHEDULE_MONITOR` (`"loss"`) when absent.
    pub fn schedule_monitor(&self, origin: &str) -> Result<String> {
        match self.hyperparams.get(MONITOR_FIELD) {
            None | Some(serde_json::Value::Null) => Ok(DEFAULT_SCHEDULE_MONITOR.to_string()),
            Some(serde_json::Value::String(name)) if !name.is_empty() => Ok(name.clone()),
            Some(other) => Err(JobError::spec(
                origin,
                "hyperparams.lr_schedule_monitor",
                format!("{other} is not a metric name (a non-empty string)"),
            )),
        }
    }

    /// `hyperparams.learning_rate`, or 0.001.
    pub fn learning_rate(&self) -> f64 {
        self.hyperparams
            .get("learning_rate")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(DEFAULT_LEARNING_RATE)
    }

    /// `hyperparams.lr_schedule`, if there is one.
    pub fn schedule_config(&self, origin: &str) -> Result<Option<ScheduleConfig>> {
        match self.hyperparams.get("lr_schedule") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| JobError::spec(origin, "hyperparams.lr_schedule", e.to_string())),
        }
    }
}

/// The metric a plateau schedule watches when `hyperparams.lr_schedule_monitor` names none.
pub const DEFAULT_SCHEDULE_MONITOR: &str = "loss";

const MONITOR_FIELD: &str = "lr_schedule_monitor";

/// The most restarts of a job's child process.
pub const MAX_RESTARTS: usize = 100;

/// The learning rate when the hyperparams give none.
pub const DEFAULT_LEARNING_RATE: f64 = 1e-3;
