use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::TrainerConfig;
use crate::data::DataCursor;
use crate::metric::LatestMetrics;
use crate::metric::Totals;
use crate::state::TrainingState;

/// The burn release the trainer is built on, recorded in every checkpoint.
pub const BURN_VERSION: &str = "0.21.0";
/// This crate's release, recorded in every checkpoint.
pub const TRAINER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a checkpoint holds (the MessagePack payload behind the header), with the module
/// and optimizer records as `M` and `O`: burn record items at full precision when written by a
/// trainer, any MessagePack value when read by a tool that does not know the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointPayload<M, O, E = ()> {
    /// Format version, `major.minor`, as in the header.
    pub format_version: String,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The trainer release that wrote the file.
    pub trainer_version: String,
    /// The burn release the trainer was built on.
    pub burn_version: String,
    /// The run's config.
    pub config: TrainerConfig,
    /// Epoch, global step, batch in epoch, samples seen, best metric, history.
    pub state: TrainingState,
    /// Where the data loader continues.
    pub cursor: DataCursor,
    /// The random state.
    pub rng: RngState,
    /// The learning-rate schedule's state.
    pub schedule: serde_json::Value,
    /// Every stateful callback's state, by key.
    pub callbacks: BTreeMap<String, serde_json::Value>,
    /// The latest metric values per split.
    pub metrics: LatestMetrics,
    /// Training metrics of the unfinished epoch and logging window.
    pub progress: EpochProgress,
    /// The module record.
    pub module: M,
    /// The optimizer record (per-parameter state such as Adam's moments).
    pub optimizer: O,
    /// Weights a callback asked the trainer to keep (`EarlyStopping`'s best), as a module
    /// record. Added in format 1.1; absent in 1.0 files (read as `None`).
    pub kept_module: Option<M>,
    /// The record of the program that wrote the file, beside the trainer's (the job runtime's
    /// run id, trainer and metrics window). Added in format 1.2; absent when there is none.
    // A missing `Option` field reads as `None`: no `default` (it would ask `E: Default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<E>,
}

impl CheckpointPayload<(), ()> {
    /// The same payload with module and optimizer records (and kept weights).
    pub fn with_records<M, O>(
        self,
        module: M,
        optimizer: O,
        kept_module: Option<M>,
    ) -> CheckpointPayload<M, O> {
        CheckpointPayload {
            format_version: self.format_version,
            created_unix_ms: self.created_unix_ms,
            trainer_version: self.trainer_version,
            burn_version: self.burn_version,
            config: self.config,
            state: self.state,
            cursor: self.cursor,
            rng: self.rng,
            schedule: self.schedule,
            callbacks: self.callbacks,
            metrics: self.metrics,
            progress: self.progress,
            module,
            optimizer,
            kept_module,
            extension: None,
        }
    }
}

impl<M, O> CheckpointPayload<M, O> {
    /// The same payload with a program's own record (see [`extension`](Self::extension)).
    pub fn with_extension<E>(self, extension: E) -> CheckpointPayload<M, O, E> {
        CheckpointPayload {
            format_version: self.format_version,
            created_unix_ms: self.created_unix_ms,
            trainer_version: self.trainer_version,
            burn_version: self.burn_version,
            config: self.config,
            state: self.state,
            cursor: self.cursor,
            rng: self.rng,
            schedule: self.schedule,
            callbacks: self.callbacks,
            metrics: self.metrics,
            progress: self.progress,
            module: self.module,
            optimizer: self.optimizer,
            kept_module: self.kept_module,
            extension: Some(extension),
        }
    }
}

/// The random state of a run. The trainer draws nothing from a stream that carries over between
/// steps: each step's backend seed is derived from `(seed, epoch, batch)` and each epoch's data
/// order from `(seed, epoch)`, so the seed and the cursor are the whole state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The run's seed.
    pub seed: u64,
    /// How per-step seeds derive from it, for readers of the file.
    pub derivation: String,
}

impl RngState {
    /// The state of a run seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            derivation: "backend seed before each batch = mix(mix(seed, epoch), batch); \
                         epoch order = ChaCha8 permutation seeded by mix(seed, epoch)"
                .into(),
        }
    }
}

/// Training metrics accumulated in the unfinished epoch, so that a run resumed mid-epoch logs
/// what an uninterrupted run logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// Totals of the logging window not yet read into the metrics.
    pub window: Totals,
    /// Totals of the windows of this epoch already read.
    pub epoch: Totals,
    /// Seconds spent in this epoch so far.
    pub seconds: f64,
    /// The logging-window totals of replicas 1 and up of a data-parallel run (`window` is rank
    /// 0's): each replica resumes its own sums, so the merged readings equal an unbroken run's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_windows: Vec<Totals>,
    /// The machines of the run that wrote it (1 when absent): its data cursor counts rounds of
    /// `nodes × replicas` batches, so a resume must have as many.
    #[serde(default = "one_node", skip_serializing_if = "is_one_node")]
    pub nodes: usize,
}

impl Default for EpochProgress {
    fn default() -> Self {
        Self {
            window: Totals::default(),
            epoch: Totals::default(),
            seconds: 0.0,
            replica_windows: Vec::new(),
            nodes: 1,
        }
    }
}

fn one_node() -> usize {
    1
}

fn is_one_node(nodes: &usize) -> bool {
    *nodes == 1
}
