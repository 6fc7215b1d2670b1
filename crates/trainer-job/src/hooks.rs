use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use burn::tensor::{backend::AutodiffBackend, Tensor};

use crate::error::HookResult;
use crate::spec::JobSpec;
use crate::state_dict::StateDict;

/// The step-hook contract: the user's code owns the math of a step, the runtime owns the rest
/// (lifecycle, data, cadence, checkpoints, events, cancellation).
///
/// The runtime calls, in order: [`setup`](StepHooks::setup) once, [`configure`](StepHooks::configure)
/// to make the state, [`load_state_dict`](StepHooks::load_state_dict) and
/// [`load_checkpoint`](StepHooks::load_checkpoint) when resuming, then for each step
/// [`prepare_batch`](StepHooks::prepare_batch) and [`train_step`](StepHooks::train_step);
/// [`state_dict`](StepHooks::state_dict) and [`save_checkpoint`](StepHooks::save_checkpoint) at
/// each checkpoint, [`sample`](StepHooks::sample) every `sample_every` steps.
///
/// For exact resume, everything that changes during training must be in the state dict (or
/// the checkpoint extra), and random draws must derive from [`StepContext::seed`].
pub trait StepHooks<B: AutodiffBackend> {
    /// What the trainer trains (model, optimizer, ...).
    type State;
    /// A batch ready for the step (tensors on the device).
    type Batch;

    /// Once, before anything else: check the hyperparams, look at the data's schema.
    fn setup(&mut self, ctx: &JobContext<'_>) -> HookResult<()> {
        let _ = ctx;
        Ok(())
    }

    /// Makes the initial state on `device`.
    fn configure(&mut self, ctx: &JobContext<'_>, device: &B::Device) -> HookResult<Self::State>;

    /// The names of the metrics the steps report (for the CSV header and monitoring); may be
    /// left empty.
    fn metric_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Turns a record batch of the feed (the projected columns, `batch_size` rows or fewer at
    /// the end of an epoch) into the step's input.
    fn prepare_batch(
        &mut self,
        state: &mut Self::State,
        batch: &RecordBatch,
        device: &B::Device,
    ) -> HookResult<Self::Batch>;

    /// One training step.
    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<B>>;

    /// The state to checkpoint.
    fn state_dict(&self, state: &Self::State) -> HookResult<StateDict>;

    /// Restores the state from a checkpoint's state dict.
    fn load_state_dict(
        &mut self,
        state: &mut Self::State,
        dict: StateDict,
        device: &B::Device,
    ) -> HookResult<()>;

    /// Anything else to checkpoint (JSON, kept in the checkpoint file beside the state dict),
    /// and files of its own: weights in another format (a LoRA adapter, safetensors), a
    /// tokenizer, written into [`CheckpointContext::output_dir`]. The runtime puts that folder
    /// in place beside the checkpoint file (`<checkpoint>.artifacts/`) before the checkpoint is
    /// written, lists its files in the folder's `index.json` and the `checkpoint` event,
    /// deletes it with its checkpoint under `keep_checkpoints`, and hands it back on resume
    /// ([`ResumeContext::checkpoint_dir`]). Default: nothing.
    fn save_checkpoint(
        &self,
        state: &Self::State,
        ctx: &CheckpointContext<'_>,
    ) -> HookResult<Option<serde_json::Value>> {
        let _ = (state, ctx);
        Ok(None)
    }

    /// Restores what [`save_checkpoint`](StepHooks::save_checkpoint) returned (`extra`) and
    /// wrote (`ctx.checkpoint_dir`), after [`load_state_dict`](StepHooks::load_state_dict).
    fn load_checkpoint(
        &mut self,
        state: &mut Self::State,
        extra: Option<serde_json::Value>,
        ctx: &ResumeContext<'_>,
    ) -> HookResult<()> {
        let _ = (state, extra, ctx);
        Ok(())
    }

    /// Makes a sample (every `sample_every` steps) and returns the file it wrote, if any.
    /// Default: no samples.
    fn sample(
        &mut self,
        state: &mut Self::State,
        ctx: &SampleContext<'_>,
    ) -> HookResult<Option<PathBuf>> {
        let _ = (state, ctx);
        Ok(None)
    }

    /// A synthetic batch for smoke runs (`mock_batches`): by default every column of the
    /// schema as `Float32` values derived from the seed and the index.
    fn mock_batch(&mut self, ctx: &JobContext<'_>, index: usize) -> HookResult<RecordBatch> {
        mock_float_batch(ctx, index)
    }
}

/// What `setup`, `configure` and `mock_batch` see of the job.
#[derive(Debug)]
pub struct JobContext<'a> {
    /// The spec.
    pub spec: &'a JobSpec,
    /// The columns the feed delivers (the projection, with their types).
    pub schema: SchemaRef,
    /// Rows in the data (one epoch), or the mock rows.
    pub rows: usize,
    /// Reads whole columns of the data (e.g. to count classes), `None` in mock runs.
    pub columns: Option<&'a dyn ColumnReader>,
}

/// Reads one column of the whole data set.
pub trait ColumnReader: std::fmt::Debug {
    /// Every value of `column`, file by file.
    fn read_column(&self, column: &str) -> crate::Result<Vec<ArrayRef>>;
}

/// What a step knows about where the run is.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// Steps done before this one.
    pub step: usize,
    /// The data epoch of this batch.
    pub epoch: usize,
    /// The learning rate for this step (from `hyperparams.learning_rate` and `lr_schedule`).
    pub learning_rate: f64,
    /// A seed for this step's random draws, from the job's seed and the step.
    pub seed: u64,
    /// Whether this step's metrics will be emitted (the end of a `metric_every` window): a step
    /// may compute costly metrics only then.
    pub emits_metrics: bool,
    /// The other peers of a data-parallel job, replicas or nodes (`None` for one replica on
    /// one machine): see
    /// [`StepContext::average_gradients`].
    pub peer: Option<crate::StepPeer>,
}

/// What [`StepHooks::save_checkpoint`] is told.
#[derive(Debug, Clone)]
pub struct CheckpointContext<'a> {
    /// Steps done at this checkpoint.
    pub step: usize,
    /// An empty folder for the checkpoint's own files (nothing written there: no folder).
    /// `None` when the checkpoint folder cannot take one now (it is not writable): the save
    /// itself then fails too and is reported as `checkpoint_failed`, and the job goes on as
    /// after any failed save.
    pub output_dir: Option<&'a Path>,
    /// Whether it is the job's last checkpoint of this session (`max_steps` reached, or the
    /// job cancelled or stopped).
    pub is_final: bool,
}

/// What [`StepHooks::load_checkpoint`] is told.
#[derive(Debug, Clone)]
pub struct ResumeContext<'a> {
    /// Steps done at the checkpoint.
    pub step: usize,
    /// The checkpoint file.
    pub checkpoint_file: &'a Path,
    /// The folder `save_checkpoint` filled for it, when it wrote anything.
    pub checkpoint_dir: Option<&'a Path>,
}

/// What a sample hook is told.
#[derive(Debug, Clone)]
pub struct SampleContext<'a> {
    /// Steps done.
    pub step: usize,
    /// The folder for sample files (created by the runtime).
    pub dir: &'a Path,
}

/// A metric value of a step: a host number, or a one-element tensor that stays on the device
/// until the metrics are emitted (no sync per step).
#[derive(Debug, Clone)]
pub enum Scalar<B: AutodiffBackend> {
    /// A host value.
    Host(f64),
    /// A device value (`[1]`), detached by the runtime.
    Device(Tensor<B, 1>),
}

impl<B: AutodiffBackend> From<f64> for Scalar<B> {
    fn from(value: f64) -> Self {
        Scalar::Host(value)
    }
}

impl<B: AutodiffBackend> From<Tensor<B, 1>> for Scalar<B> {
    fn from(value: Tensor<B, 1>) -> Self {
        Scalar::Device(value)
    }
}

/// What a step returns: metrics, debug information, and requests to the runtime.
#[derive(Debug, Clone)]
pub struct StepResult<B: AutodiffBackend> {
    /// Scalars averaged over each `metric_every` window and emitted as `metrics` events.
    pub metrics: BTreeMap<String, Scalar<B>>,
    /// Free JSON about the step, logged at debug level.
    pub debug: Option<serde_json::Value>,
    /// Requests to the runtime.
    pub control: StepControl,
}

impl<B: AutodiffBackend> Default for StepResult<B> {
    fn default() -> Self {
        Self {
            metrics: BTreeMap::new(),
            debug: None,
            control: StepControl::default(),
        }
    }
}

impl<B: AutodiffBackend> StepResult<B> {
    /// A result without metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric.
    pub fn metric(mut self, name: impl Into<String>, value: impl Into<Scalar<B>>) -> Self {
        self.metrics.insert(name.into(), value.into());
        self
    }
}

/// Requests of a step to the runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepControl {
    /// This step is not reported: no metrics, checkpoint or sample at it even when the
    /// cadence falls on it (its metrics join the next window).
    pub skip_cadence_emit: bool,
    /// Wait this long before the next step (rate limits, a busy resource); a cancellation
    /// ends the wait.
    pub backoff_seconds: f64,
}

/// The default mock batch: every schema column as `Float32`, deterministic in (seed, index).
pub fn mock_float_batch(ctx: &JobContext<'_>, index: usize) -> HookResult<RecordBatch> {
    let rows = ctx.spec.dataset.batch_size;
    let fields: Vec<Field> = ctx
        .schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Float32, false))
        .collect();
    let columns: Vec<ArrayRef> = (0..fields.len())
        .map(|c| {
            let values = (0..rows).map(|r| mock_value(ctx.spec.seed, index, r, c));
            Arc::new(Float32Array::from_iter_values(values)) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(batch)
}

/// A value in [-1, 1) from (seed, batch, row, column).
pub fn mock_value(seed: u64, batch: usize, row: usize, column: usize) -> f32 {
    let mixed = trainer_core::data::mix_seed(
        trainer_core::data::mix_seed(seed ^ batch as u64, row as u64),
        column as u64,
    );
    ((mixed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}
