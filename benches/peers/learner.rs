//! The same workload through burn-train 0.21's `Learner` (`SupervisedTraining::launch`), set up
//! as its book does, with the loss and accuracy metrics, a quiet renderer (the default one prints
//! every batch) and nothing written to disk.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_train::logger::InMemoryMetricLogger;
use burn_train::metric::{AccuracyMetric, LossMetric, MetricDefinition};
use burn_train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn_train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};

use super::data::{Data, ItemBatcher, Workload, LR, SEED};
use crate::support::digits::DigitsBatch;
use crate::support::mlp::{Mlp, MlpConfig};

struct QuietRenderer;

impl MetricsRendererTraining for QuietRenderer {
    fn update_train(&mut self, _: MetricState) {}
    fn update_valid(&mut self, _: MetricState) {}
    fn render_train(&mut self, _: TrainingProgress, _: Vec<ProgressType>) {}
    fn render_valid(&mut self, _: TrainingProgress, _: Vec<ProgressType>) {}
}

impl MetricsRendererEvaluation for QuietRenderer {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}
    fn render_test(&mut self, _: EvaluationProgress, _: Vec<ProgressType>) {}
}

impl MetricsRenderer for QuietRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _: MetricDefinition) {}
}

fn classify<B: Backend>(model: &Mlp<B>, batch: DigitsBatch<B>) -> ClassificationOutput<B> {
    let logits = model.forward(batch.images);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.clone(), batch.targets.clone());
    ClassificationOutput::new(loss, logits, batch.targets)
}

impl<B: AutodiffBackend> TrainStep for Mlp<B> {
    type Input = DigitsBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: DigitsBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = classify(self, batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for Mlp<B> {
    type Input = DigitsBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: DigitsBatch<B>) -> ClassificationOutput<B> {
        classify(self, batch)
    }
}

/// Runs the workload; returns the optimizer steps taken.
pub fn run<B: AutodiffBackend>(w: Workload, data: &Data, device: &B::Device) -> usize {
    let train: Arc<dyn DataLoader<B, DigitsBatch<B>>> = DataLoaderBuilder::new(ItemBatcher)
        .batch_size(w.batch)
        .shuffle(SEED)
        .num_workers(0)
        .set_device(device.clone())
        .build(InMemDataset::new(data.train.clone()));
    let valid: Arc<dyn DataLoader<B::InnerBackend, DigitsBatch<B::InnerBackend>>> =
        DataLoaderBuilder::new(ItemBatcher)
            .batch_size(w.batch)
            .num_workers(0)
            .set_device(device.clone())
            .build(InMemDataset::new(data.valid.clone()));
    let model = MlpConfig::new(w.inputs, w.hidden.to_vec(), 10).init::<B>(SEED, device);
    let optimizer = AdamConfig::new().init::<B, Mlp<B>>();
    let directory = std::env::temp_dir().join(format!("trainer-peers-{}", std::process::id()));
    let training = SupervisedTraining::new(&directory, train, valid)
        .num_epochs(w.epochs)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .renderer(QuietRenderer)
        .with_application_logger(None)
        .with_metric_logger(InMemoryMetricLogger::new());
    let _model = training.launch(Learner::new(model, optimizer, LR)).model;
    let _ = std::fs::remove_dir_all(&directory);
    w.steps(data.train.len())
}
