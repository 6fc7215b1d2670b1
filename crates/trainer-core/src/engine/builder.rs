use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burn::data::{dataloader::batcher::Batcher, dataset::Dataset};
use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::{Engine, SupervisedTrainer};
use crate::callback::{
    AvailableMetrics, Callback, CallbackList, Checkpointing, EarlyStopping, EARLY_STOPPING_KEY,
};
use crate::checkpoint::HostRecord;
use crate::config::TrainerConfig;
use crate::data::{DataLoader, Shard};
use crate::error::{Result, TrainerError};
use crate::metric::{
    names, Accuracy, ConfusionCounts, Metric, Monitor, Split, TopKAccuracy, TIMING_METRICS,
};
use crate::parallel::NodeConfig;

mod data_parallel;
use crate::schedule::{ConstantLr, LrSchedule};
use crate::step::{TrainStep, ValidStep};

/// Builds a [`SupervisedTrainer`] from a model, an optimizer, a config and a device, plus data,
/// callbacks and optionally a learning-rate schedule.
///
/// ```
/// # use burn::{data::{dataloader::batcher::Batcher, dataset::InMemDataset}, module::Module,
/// #     nn::{Linear, LinearConfig, loss::MseLoss, loss::Reduction}, optim::SgdConfig,
/// #     tensor::{Tensor, backend::{AutodiffBackend, Backend}}};
/// # use burn_autodiff::Autodiff;
/// # use burn_ndarray::NdArray;
/// use trainer_core::prelude::*;
///
/// #[derive(Module, Debug)]
/// struct Model<B: Backend> { linear: Linear<B> }
///
/// #[derive(Clone)]
/// struct Batch<B: Backend> { x: Tensor<B, 2>, y: Tensor<B, 2> }
///
/// impl<B: AutodiffBackend> TrainStep<B, Batch<B>> for Model<B> {
///     fn step(&self, batch: Batch<B>) -> StepOutput<B> {
///         let n = batch.x.dims()[0];
///         let loss = MseLoss::new().forward(self.linear.forward(batch.x), batch.y, Reduction::Mean);
///         StepOutput::loss(loss, n)
///     }
/// }
/// impl<B: Backend> ValidStep<B, Batch<B>> for Model<B> {
///     fn step(&self, batch: Batch<B>) -> StepOutput<B> {
///         let n = batch.x.dims()[0];
///         let loss = MseLoss::new().forward(self.linear.forward(batch.x), batch.y, Reduction::Mean);
///         StepOutput::loss(loss, n)
///     }
/// }
///
/// #[derive(Clone)]
/// struct Pairs;
/// impl<B: Backend> Batcher<B, (f32, f32), Batch<B>> for Pairs {
///     fn batch(&self, items: Vec<(f32, f32)>, device: &B::Device) -> Batch<B> {
///         let n = items.len();
///         let (x, y): (Vec<f32>, Vec<f32>) = items.into_iter().unzip();
///         Batch {
///             x: Tensor::<B, 1>::from_floats(x.as_slice(), device).reshape([n, 1]),
///             y: Tensor::<B, 1>::from_floats(y.as_slice(), device).reshape([n, 1]),
///         }
///     }
/// }
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// let model = Model::<B> { linear: LinearConfig::new(1, 1).init(&device) };
/// let data: Vec<(f32, f32)> = (0..64).map(|i| (i as f32 / 64.0, 2.0 * i as f32 / 64.0)).collect();
///
/// let config = TrainerConfig::new(0.1).with_epochs(Some(3)).with_batch_size(16);
/// let mut trainer = SupervisedTrainer::builder(model, SgdConfig::new().init(), config, device)
///     .train_data(InMemDataset::new(data.clone()), Pairs)
///     .valid_data(InMemDataset::new(data), Pairs)
///     .build()
///     .unwrap();
/// let report = trainer.fit().unwrap();
/// assert_eq!(report.epochs, 3);
/// assert_eq!(report.steps, 12);
/// ```
pub struct SupervisedTrainerBuilder<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    model: M,
    optimizer: O,
    config: TrainerConfig,
    device: B::Device,
    schedule: Option<Box<dyn LrSchedule>>,
    train: Option<DataLoader<B, TB>>,
    valid: Option<DataLoader<B::InnerBackend, VB>>,
    test: Option<DataLoader<B::InnerBackend, VB>>,
    callbacks: Vec<Box<dyn Callback>>,
    checkpoint_dir: Option<PathBuf>,
    top_k: Option<usize>,
    metrics: Vec<Arc<dyn Metric<B::InnerBackend>>>,
    replica_devices: Vec<B::Device>,
    collective_timeout: Duration,
    verify_replicas: bool,
    nodes: Option<NodeConfig>,
}

/// How long replicas wait for each other in a collective call by default: longer than any
/// honest step, short enough that a replica that hangs ends the run.
pub const DEFAULT_COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(600);

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
    O: Optimizer<M, B>,
    O::Record: HostRecord<B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// Starts a builder. Any burn optimizer works; the learning rate comes from the config
    /// unless a schedule is given.
    pub fn builder(
        model: M,
        optimizer: O,
        config: TrainerConfig,
        device: B::Device,
    ) -> SupervisedTrainerBuilder<B, M, O, TB, VB> {
        SupervisedTrainerBuilder {
            model,
            optimizer,
            config,
            device,
            schedule: None,
            train: None,
            valid: None,
            test: None,
            callbacks: Vec::new(),
            checkpoint_dir: None,
            top_k: None,
            metrics: Vec::new(),
            replica_devices: Vec::new(),
            collective_timeout: DEFAULT_COLLECTIVE_TIMEOUT,
            verify_replicas: false,
            nodes: None,
        }
    }
}

impl<B, M, O, TB, VB> SupervisedTrainerBuilder<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
    O: Optimizer<M, B>,
    O::Record: HostRecord<B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// The training data, shuffled each epoch from `(config.seed, epoch)`.
    pub fn train_data<D, T, I>(mut self, dataset: D, batcher: T) -> Self
    where
        D: Dataset<I> + 'static,
        T: Batcher<B, I, TB> + 'static,
        I: Send + 'static,
    {
        let loader = DataLoader::builder(dataset, batcher, self.device.clone())
            .split(Split::Train)
            .batch_size(self.config.batch_size)
            .shuffle(self.config.seed)
            .drop_last(self.config.drop_last)
            .prefetch(self.config.prefetch_batches)
            .build();
        self.train = Some(loader);
        self
    }

    /// The validation data, in its own order.
    pub fn valid_data<D, T, I>(mut self, dataset: D, batcher: T) -> Self
    where
        D: Dataset<I> + 'static,
        T: Batcher<B::InnerBackend, I, VB> + 'static,
        I: Send + 'static,
    {
        self.valid = Some(self.eval_loader(dataset, batcher, Split::Valid));
        self
    }

    /// The test data, in its own order.
    pub fn test_data<D, T, I>(mut self, dataset: D, batcher: T) -> Self
    where
        D: Dataset<I> + 'static,
        T: Batcher<B::InnerBackend, I, VB> + 'static,
        I: Send + 'static,
    {
        self.test = Some(self.eval_loader(dataset, batcher, Split::Test));
        self
    }

    fn eval_loader<D, T, I>(
        &self,
        dataset: D,
        batcher: T,
        split: Split,
    ) -> DataLoader<B::InnerBackend, VB>
    where
        D: Dataset<I> + 'static,
        T: Batcher<B::InnerBackend, I, VB> + 'static,
        I: Send + 'static,
    {
        DataLoader::builder(dataset, batcher, self.device.clone())
            .split(split)
            .batch_size(self.config.batch_size)
            .prefetch(self.config.prefetch_batches)
            .build()
    }

    /// Adds a callback; callbacks run in the order added.
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Adds a boxed callback.
    pub fn boxed_callback(mut self, callback: Box<dyn Callback>) -> Self {
        self.callbacks.push(callback);
        self
    }

    /// A learning-rate schedule; it replaces the config's `lr_schedule` and constant lr.
    pub fn schedule(mut self, schedule: impl LrSchedule + 'static) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// A boxed learning-rate schedule (e.g. from [`ScheduleConfig::build`](crate::schedule::ScheduleConfig::build)).
    pub fn boxed_schedule(mut self, schedule: Box<dyn LrSchedule>) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Shorthand for a [`Checkpointing`] callback into `dir` on the config's `checkpoint`
    /// frequency (plus its defaults: at the end, on an error, on request; keep all). For
    /// monitoring, retention or synchronous saving, add a `Checkpointing` callback instead.
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// Also reports `top{k}_accuracy` for classifiers: the share of items whose target is among
    /// the `k` largest logits (counted on the device, like accuracy).
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k).filter(|&k| k > 0);
        self
    }

    /// Adds a user [`Metric`], computed on validation and test passes, and on training batches
    /// unless it says otherwise. Metrics work on the inner backend's outputs.
    pub fn metric(mut self, metric: impl Metric<B::InnerBackend> + 'static) -> Self {
        self.metrics.push(Arc::new(metric));
        self
    }

    /// Validates the config and the callbacks and makes the trainer.
    pub fn build(mut self) -> Result<SupervisedTrainer<B, M, O, TB, VB>> {
        self.config.validate()?;
        let (first, global) = self.global_ranks()?;
        match (self.checkpoint_dir.take(), self.config.checkpoint) {
            (Some(dir), frequency) => {
                let mut checkpointing = Checkpointing::new(dir);
                if let Some(frequency) = frequency {
                    checkpointing = checkpointing.every(frequency);
                }
                self.callbacks.push(Box::new(checkpointing));
            }
            (None, Some(frequency)) => {
                return Err(TrainerError::InvalidConfig {
                    field: "checkpoint",
                    value: format!("{frequency:?}"),
                    reason: "there is no checkpoint folder: give one with `checkpoint_dir`, or add a `Checkpointing` callback and leave this unset".into(),
                })
            }
            (None, None) => {}
        }
        if let Some(patience) = self.config.early_stopping_patience {
            if self
                .callbacks
                .iter()
                .any(|c| c.key().as_deref() == Some(EARLY_STOPPING_KEY))
            {
                return Err(TrainerError::InvalidConfig {
                    field: "early_stopping_patience",
                    value: patience.to_string(),
                    reason: "it adds an `EarlyStopping` callback, and the builder was given one too: keep one of them".into(),
                });
            }
            let early_stopping =
                EarlyStopping::new(Monitor::min(Split::Valid, names::LOSS)).patience(patience);
            self.callbacks.push(Box::new(early_stopping));
        }
        let callbacks = CallbackList::new(self.callbacks)?;
        let (metrics, train, eval) = metric_sets(self.top_k, self.metrics)?;
        let mut available = AvailableMetrics::default();
        available.set(Split::Train, train);
        if self.valid.is_some() && self.config.validation.is_some() {
            available.set(Split::Valid, eval.clone());
        }
        if self.test.is_some() {
            available.set(Split::Test, eval);
        }
        let schedule = match (self.schedule, &self.config.lr_schedule) {
            (Some(schedule), _) => schedule,
            (None, Some(config)) => config.build(self.config.learning_rate)?,
            (None, None) => Box::new(ConstantLr::constant(self.config.learning_rate)),
        };
        if global > 1 {
            // Rank 0 takes every `global`-th batch of each epoch, from its global rank.
            self.train = self
                .train
                .map(|loader| loader.sharded(Shard::training(first, global), self.device.clone()));
        }
        let batches_per_epoch = self.train.as_ref().map(DataLoader::num_batches);
        Ok(SupervisedTrainer {
            model: Some(self.model),
            optimizer: self.optimizer,
            engine: Engine::new(
                self.config,
                schedule,
                callbacks,
                available,
                batches_per_epoch,
            ),
            train: self.train,
            valid: self.valid,
            test: self.test,
            device: self.device,
            progress: Default::default(),
            epoch_batches: None,
            accumulator: GradientsAccumulator::new(),
            kept: None,
            confusion: Default::default(),
            replica_devices: self.replica_devices,
            collective_timeout: self.collective_timeout,
            verify_replicas: self.verify_replicas,
            nodes: self.nodes,
            gradient_sync_time: Duration::ZERO,
            replicas: None,
            train_metrics: metrics.iter().filter(|m| m.on_train()).cloned().collect(),
            metrics: metrics.into(),
        })
    }
}

/// The run's metrics, the trainer's own first (accuracy, the top-k accuracy when asked for, the
/// confusion counts), then the user's; and the names the train and evaluation splits report. A
/// user metric needs names of its own.
#[allow(clippy::type_complexity)]
fn metric_sets<B: Backend>(
    top_k: Option<usize>,
    user: Vec<Arc<dyn Metric<B>>>,
) -> Result<(Vec<Arc<dyn Metric<B>>>, Vec<String>, Vec<String>)> {
    let mut metrics: Vec<Arc<dyn Metric<B>>> = vec![Arc::new(Accuracy)];
    metrics.extend(top_k.map(|k| Arc::new(TopKAccuracy { k }) as Arc<dyn Metric<B>>));
    metrics.push(Arc::new(ConfusionCounts));
    let mut taken: std::collections::BTreeSet<String> = [names::LOSS, names::LR]
        .iter()
        .chain(&TIMING_METRICS)
        .map(|n| n.to_string())
        .collect();
    for metric in &metrics {
        taken.insert(metric.name());
        taken.extend(metric.value_names());
    }
    for metric in &user {
        let own: std::collections::BTreeSet<String> = std::iter::once(metric.name())
            .chain(metric.value_names())
            .collect();
        if let Some(name) = own
            .iter()
            .find(|name| name.is_empty() || taken.contains(*name))
        {
            return Err(TrainerError::InvalidConfig {
                field: "metric",
                value: format!("{name:?}"),
                reason: "a user metric needs a name of its own: not empty, not a built-in metric's, not another user metric's".into(),
            });
        }
        taken.extend(own);
    }
    metrics.extend(user);
    let mut train: Vec<String> = [names::LOSS, names::LR]
        .iter()
        .chain(&TIMING_METRICS)
        .map(|n| n.to_string())
        .collect();
    let mut eval = vec![names::LOSS.to_string()];
    for metric in &metrics {
        if metric.on_train() {
            train.extend(metric.value_names());
        }
        eval.extend(metric.value_names());
    }
    Ok((metrics, train, eval))
}
