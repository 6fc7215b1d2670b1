//! The supervised trainer: the user's model gives the loss; the trainer does backward, gradient
//! accumulation and clipping, the optimizer step and the schedule. It is a program of the engine
//! loop (`program.rs`); loading a checkpoint (`resume.rs`) and the evaluation passes (`eval.rs`)
//! have rooms of their own.

mod eval;
mod micro_step;
mod node_requests;
mod program;
pub(super) mod replica;
mod replica_start;
pub(super) mod replicas;
mod resume;
mod rng_lock;

pub(super) use rng_lock::BACKEND_RNG;

use std::path::Path;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::run_loop::{run_loop, Engine, StepProgram};
use super::throughput::Throughput;
use super::{contain, FitReport};
use crate::checkpoint::{EpochProgress, HostRecord, Snapshot};
use crate::config::{ScheduleInterval, TrainerConfig};
use crate::data::{Batches, DataCursor, DataLoader};
use crate::error::{Result, TrainerError};
use crate::metric::{LatestMetrics, MetricAccumulator, Metrics, Split, Totals};
use crate::state::{MetricValues, TrainingState};
use crate::step::{TrainStep, ValidStep};

/// What a model needs to be trained by the [`SupervisedTrainer`]: a burn module whose autodiff
/// form steps on training batches `TB`, whose inner form steps on evaluation batches `VB`, and
/// whose record can be copied to the host. Every such model is one (a blanket impl): the trait
/// only names the bounds once.
pub trait SupervisedModel<B: AutodiffBackend, TB, VB>:
    AutodiffModule<B, InnerModule: ValidStep<B::InnerBackend, VB>>
    + TrainStep<B, TB>
    + Module<B, Record: HostRecord<B>>
    + 'static
{
}

impl<B, TB, VB, M> SupervisedModel<B, TB, VB> for M
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB> + 'static,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
{
}

/// An optimizer the [`SupervisedTrainer`] can checkpoint and give to replicas: its record can be
/// copied to the host, and it can be cloned (all of burn's). A blanket impl, like
/// [`SupervisedModel`].
pub trait SupervisedOptimizer<M: AutodiffModule<B>, B: AutodiffBackend>:
    Optimizer<M, B, Record: HostRecord<B>> + Clone + 'static
{
}

impl<M, B, O> SupervisedOptimizer<M, B> for O
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B> + Clone + 'static,
    O::Record: HostRecord<B>,
{
}

/// The supervised trainer: the user's model gives the loss, the trainer does backward,
/// gradient accumulation and clipping, the optimizer step and the learning-rate schedule, and
/// owns the loop around them.
///
/// Made with [`SupervisedTrainer::builder`].
pub struct SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    pub(super) model: Option<M>,
    pub(super) optimizer: O,
    /// State, config, schedule, callbacks and latest metrics; drives `fit`.
    pub(super) engine: Engine,
    pub(super) train: Option<DataLoader<B, TB>>,
    pub(super) valid: Option<DataLoader<B::InnerBackend, VB>>,
    pub(super) test: Option<DataLoader<B::InnerBackend, VB>>,
    pub(super) device: B::Device,
    pub(super) progress: Progress<B::InnerBackend>,
    /// The current epoch's batches, from the cursor on (made at its first step).
    pub(super) epoch_batches: Option<Batches<B, TB>>,
    /// Gradients of micro-batches that wait for an optimizer step.
    pub(super) accumulator: GradientsAccumulator<M>,
    /// Weights a callback asked to keep (references: burn tensors are immutable values).
    pub(super) kept: Option<M>,
    /// The metrics (built-in and the user's): all of them (validation and test), and those
    /// computed on training batches.
    pub(super) metrics: Metrics<B::InnerBackend>,
    pub(super) train_metrics: Metrics<B::InnerBackend>,
    /// The confusion matrix of the last validation and test pass.
    pub(super) confusion: std::collections::BTreeMap<Split, crate::metric::ConfusionMatrix>,
    /// The devices of replicas 1 and up (data parallel; empty on one device).
    pub(super) replica_devices: Vec<B::Device>,
    /// How long a replica waits for the others in a collective call before the run fails.
    pub(super) collective_timeout: std::time::Duration,
    /// The other machines of a multi-node run.
    pub(super) nodes: Option<crate::parallel::NodeConfig>,
    /// Whether rank 0 checks after every optimizer step that the replicas' weights agree.
    pub(super) verify_replicas: bool,
    /// Time rank 0 spent averaging gradients in the last `fit`.
    pub(super) gradient_sync_time: std::time::Duration,
    /// The other replicas while `fit` runs.
    pub(super) replicas: Option<replicas::ReplicaSet<B, M>>,
}

/// The unfinished epoch: training metrics not yet folded into the epoch summary, and micro-batches
/// whose gradients wait for an optimizer step.
pub(super) struct Progress<B: burn::tensor::backend::Backend> {
    window: MetricAccumulator<B>,
    epoch_totals: Totals,
    epoch_started: Instant,
    epoch_seconds_before: f64,
    pending: usize,
    /// The logging window's pace, for the throughput metrics.
    throughput: Throughput,
    /// The other replicas' window totals a checkpoint restored, for them to go on from when
    /// they start.
    replica_windows: Vec<Totals>,
}

impl<B: burn::tensor::backend::Backend> Default for Progress<B> {
    fn default() -> Self {
        Self {
            window: MetricAccumulator::new(),
            epoch_totals: Totals::default(),
            epoch_started: Instant::now(),
            epoch_seconds_before: 0.0,
            pending: 0,
            throughput: Throughput::default(),
            replica_windows: Vec::new(),
        }
    }
}

impl<B: burn::tensor::backend::Backend> Progress<B> {
    pub(super) fn epoch_seconds(&self) -> f64 {
        self.epoch_seconds_before + self.epoch_started.elapsed().as_secs_f64()
    }
}

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// Trains until the configured epochs or steps are done or a callback stops the run,
    /// validating as configured.
    pub fn fit(&mut self) -> Result<FitReport> {
        self.engine.start_clock();
        let result = contain("training", || run_loop(self));
        let result = match result {
            Ok(()) => Ok(FitReport::from_state(
                &self.engine.state,
                self.engine.latest.valid().cloned(),
            )),
            Err(error) => {
                // Frees and ends the other replicas before the failure is reported.
                self.replicas = None;
                Err(self.fail(error))
            }
        };
        self.engine.stop_clock();
        result
    }

    /// Runs the validation data through the model and returns the mean metrics.
    pub fn validate(&mut self) -> Result<MetricValues> {
        contain("validation", || self.run_eval(Split::Valid)).map_err(|e| self.fail(e))
    }

    /// Runs the test data through the model and returns the mean metrics.
    pub fn test(&mut self) -> Result<MetricValues> {
        contain("testing", || self.run_eval(Split::Test)).map_err(|e| self.fail(e))
    }

    /// Where the run stands.
    pub fn state(&self) -> &TrainingState {
        &self.engine.state
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.engine.config
    }

    /// The model in its current state.
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the model is only taken during an optimizer step")
    }

    /// Ends the trainer and hands back the trained model.
    pub fn into_model(self) -> M {
        self.model
            .expect("the model is only taken during an optimizer step")
    }

    /// The learning rate the next optimizer step uses.
    pub fn learning_rate(&self) -> f64 {
        self.engine.schedule.lr()
    }

    /// The confusion matrix of the last `valid` or `test` pass of a classifier.
    pub fn confusion_matrix(&self, split: Split) -> Option<&crate::metric::ConfusionMatrix> {
        self.confusion.get(&split)
    }

    /// Weights a callback asked to keep (e.g. `EarlyStopping`'s best), if any.
    pub fn kept_weights(&self) -> Option<&M> {
        self.kept.as_ref()
    }

    /// The latest metrics read back, per split.
    pub fn latest_metrics(&self) -> &LatestMetrics {
        &self.engine.latest
    }

    /// Time this replica (rank 0) spent averaging gradients with the others in the last `fit`
    /// that ended well: laying them out in one buffer, the all-reduce with its wait for the
    /// slowest replica, and taking them back. Zero on one device.
    pub fn gradient_sync_time(&self) -> std::time::Duration {
        self.gradient_sync_time
    }

    /// The device the model trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Takes a checkpoint of the run as it stands: the model and optimizer records (full
    /// precision), the state, config, schedule, callback states, metrics and data cursor. It
    /// holds references to the tensors; the host copy and the encoding happen in
    /// [`Snapshot::encode`], which can run on another thread while training goes on.
    ///
    /// Snapshots are taken between optimizer steps; in the middle of an accumulated step
    /// (micro-batches whose gradients wait) this is an error.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        if self.progress.pending > 0 {
            return Err(TrainerError::State {
                key: "snapshot".into(),
                message: format!(
                    "{} micro-batches wait for an optimizer step; snapshots are taken between steps",
                    self.progress.pending
                ),
            });
        }
        let state = &self.engine.state;
        let cursor = DataCursor {
            epoch: state.epoch,
            batch: state.batch_in_epoch,
        };
        let replica_windows = match &self.replicas {
            Some(replicas) => replicas.windows(false)?,
            None => Vec::new(),
        };
        let state = &self.engine.state;
        let progress = EpochProgress {
            window: self.progress.window.read_totals(),
            replica_windows,
            nodes: self.nodes.as_ref().map_or(1, |nodes| nodes.nodes),
            epoch: self.progress.epoch_totals.clone(),
            seconds: if state.batch_in_epoch > 0 {
                self.progress.epoch_seconds()
            } else {
                0.0
            },
        };
        let meta = self.engine.checkpoint_meta(cursor, progress);
        // References to the tensors only: the host copy happens when the snapshot is encoded.
        Ok(Snapshot::from_records::<B, _, _>(
            meta,
            self.model().clone().into_record(),
            self.optimizer.to_record(),
            self.kept.clone().map(Module::into_record),
        ))
    }

    /// Writes a checkpoint of the run to `path`, synchronously and atomically.
    pub fn save_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.snapshot()?.save(path.as_ref()).map(|_| ())
    }

    /// Averages the gradients with the other replicas (if any), clips them and steps the
    /// optimizer and, on a per-step interval, the schedule.
    pub(super) fn optimizer_step(&mut self, grads: GradientsParams) -> Result<()> {
        let grads = match &self.replicas {
            Some(replicas) => replicas.average(self.model(), grads)?,
            None => grads,
        };
        let model = self.model.take().expect("model present between steps");
        let model = micro_step::apply_gradients::<B, M, O>(
            &mut self.optimizer,
            model,
            grads,
            self.engine.schedule.lr(),
            self.engine.config.gradient_clipping,
        );
        self.model = Some(model);
        self.engine.state.global_step += 1;
        if let (Some(replicas), true) = (&self.replicas, self.verify_replicas) {
            replicas.verify(self.model(), self.engine.state.global_step)?;
        }
        if self.engine.config.schedule_interval == ScheduleInterval::Step {
            self.advance_schedule();
        }
        Ok(())
    }

    /// The training metrics since the window was last reset, of every replica.
    pub(super) fn read_window(&mut self) -> Result<Totals> {
        let mut totals = self.progress.window.read_totals();
        if let Some(replicas) = &self.replicas {
            // Rank by rank, each replica's own sums: the same additions whether or not the run
            // was resumed in between.
            for other in replicas.windows(true)? {
                totals.add(&other);
            }
        }
        self.progress.window.reset();
        Ok(totals)
    }

    /// Steps the schedule on its interval; schedules that need a metric step after each
    /// validation instead (see `run_eval`).
    pub(super) fn advance_schedule(&mut self) {
        if !self.engine.schedule.needs_metric() {
            self.engine.schedule.step();
        }
    }

    /// Throughput over the logging window that ends now (this session's steps only), time in
    /// `fit` so far, and the time left at that pace when the run's length is known.
    pub(super) fn add_pace(&mut self, values: &mut MetricValues) {
        let pace = self.progress.throughput.take();
        values.insert("elapsed_seconds".into(), self.engine.elapsed_seconds());
        let (Some(steps_per_second), Some(samples_per_second)) =
            (pace.steps_per_second(), pace.samples_per_second())
        else {
            return;
        };
        values.insert("steps_per_second".into(), steps_per_second);
        values.insert("samples_per_second".into(), samples_per_second);
        let config = &self.engine.config;
        let per_epoch = self.num_batches().div_ceil(config.gradient_accumulation);
        let total = match (config.epochs.map(|e| e * per_epoch), config.max_steps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(total) = total {
            values.insert(
                "eta_seconds".into(),
                total.saturating_sub(self.engine.state.global_step) as f64 / steps_per_second,
            );
        }
    }

    /// Batches in one epoch of the training data.
    pub(super) fn num_batches(&self) -> usize {
        self.engine.batches_per_epoch.unwrap_or(0)
    }

    /// The metric state of a new epoch.
    pub(super) fn fresh_progress(&self) -> Progress<B::InnerBackend> {
        Progress {
            window: MetricAccumulator::new().with_metrics(self.train_metrics.clone()),
            ..Progress::default()
        }
    }
}
