//! Loading a checkpoint into a supervised trainer: every check first (header, checksum, the
//! untrusted-bytes scan, the records against the model and optimizer, the config), then the
//! state, so that a refused checkpoint leaves the trainer as it was.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;

use super::{Progress, SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
use crate::checkpoint::{
    check_optimizer_host, latest_in, load_and_decode, load_module_host, CheckpointPayload,
    HostRecord,
};
use crate::engine::resume_check::data_order_change;
use crate::error::{Result, TrainerError};
use crate::metric::MetricAccumulator;

/// The host form of the model's record.
type ModuleHost<B, M> = <<M as Module<B>>::Record as HostRecord<B>>::Host;
/// The host form of the optimizer's record.
type OptimizerHost<B, M, O> = <<O as Optimizer<M, B>>::Record as HostRecord<B>>::Host;

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// Resumes from a checkpoint file, or from the checkpoint a folder's `latest` file names;
    /// returns the file loaded. The next `fit` continues at the exact batch after it.
    pub fn resume_from(&mut self, from: impl AsRef<Path>) -> Result<PathBuf> {
        let from = from.as_ref();
        let file = if from.is_dir() {
            latest_in(from)?.ok_or_else(|| TrainerError::NoCheckpoint {
                dir: from.to_path_buf(),
            })?
        } else {
            from.to_path_buf()
        };
        self.load_checkpoint(&file)?;
        Ok(file)
    }

    /// Loads a checkpoint file: model, optimizer, state, schedule, callback states, metrics and
    /// data cursor. Checked first: the header, checksum and version; then that the payload is
    /// this model's and optimizer's, that every tensor has the model's shape (the error names the
    /// tensor), and that the config keeps the data order (seed, batch size, `drop_last`,
    /// gradient accumulation). Those checks leave the trainer untouched when they fail.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let mismatch = |detail: String| TrainerError::CheckpointMismatch {
            path: origin.clone(),
            detail,
        };
        // Each large tensor is read from the file straight into the buffer it loads from.
        let (loaded, scan, decoded) =
            load_and_decode::<CheckpointPayload<ModuleHost<B, M>, OptimizerHost<B, M, O>>>(path)?;
        let payload = decoded.map_err(|e| {
            mismatch(format!(
                "its payload does not decode as this model's and optimizer's records: {e}"
            ))
        })?;
        if let Some((field, theirs, ours)) = data_order_change(&payload.config, &self.engine.config)
        {
            return Err(mismatch(format!(
                "`{field}` is {theirs} in the checkpoint and {ours} in this trainer; it fixes the data order, so the run would not continue where it stopped"
            )));
        }
        let nodes = self.nodes.as_ref().map_or(1, |nodes| nodes.nodes);
        if payload.progress.nodes != nodes {
            return Err(mismatch(format!(
                "it was written by a run over {} node(s) and this one has {nodes}; the node count fixes the data order, so the run would not continue where it stopped",
                payload.progress.nodes
            )));
        }
        if let Some(loader) = &self.train {
            if payload.cursor.batch > loader.num_batches() {
                return Err(mismatch(format!(
                    "its data cursor is at batch {} of an epoch; this training data has {} batches",
                    payload.cursor.batch,
                    loader.num_batches()
                )));
            }
        }
        let device = self.device.clone();
        let source = |field: &str| loaded.source(&scan, field);
        let model = load_module_host::<B, M>(
            self.model().clone(),
            payload.module,
            source("module"),
            &device,
        )
        .map_err(|detail| mismatch(format!("its module record does not fit: {detail}")))?;
        let kept = match payload.kept_module {
            None => None,
            Some(host) => Some(
                load_module_host::<B, M>(
                    self.model().clone(),
                    host,
                    source("kept_module"),
                    &device,
                )
                .map_err(|detail| mismatch(format!("its kept weights do not fit: {detail}")))?,
            ),
        };
        check_optimizer_host::<B, M, _>(&payload.optimizer, source("optimizer"), &model)
            .map_err(|detail| mismatch(format!("its optimizer record does not fit: {detail}")))?;
        drop(loaded);
        let current = self.optimizer.clone();
        let record = payload.optimizer;
        let optimizer = catch_unwind(AssertUnwindSafe(|| {
            current.load_record(<O::Record as HostRecord<B>>::from_host(record, &device))
        }))
        .map_err(|_| mismatch("its optimizer record holds tensor data burn cannot load".into()))?;
        self.engine
            .load_states(payload.schedule, payload.callbacks)?;
        self.model = Some(model);
        self.kept = kept;
        self.optimizer = optimizer;
        let mut state = payload.state;
        state.stop_reason = None;
        self.engine.state = state;
        self.engine.latest = payload.metrics;
        self.progress = Progress {
            window: MetricAccumulator::from_totals(payload.progress.window)
                .with_metrics(self.train_metrics.clone()),
            epoch_totals: payload.progress.epoch,
            epoch_started: Instant::now(),
            epoch_seconds_before: payload.progress.seconds,
            replica_windows: payload.progress.replica_windows,
            ..Progress::default()
        };
        Ok(())
    }
}
