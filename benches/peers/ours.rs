//! The same workload through `SupervisedTrainer`, configured as a user would: the loop,
//! its metrics (loss, accuracy, throughput), validation after each epoch when the workload has
//! one, no checkpoints and no event files.

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use trainer::prelude::*;

use super::data::{Data, ItemBatcher, Workload, LR, SEED};
use crate::support::mlp::MlpConfig;

/// Runs the workload; returns the optimizer steps taken and the last epoch's mean loss.
pub fn run<B: AutodiffBackend>(w: Workload, data: &Data, device: &B::Device) -> (usize, f32) {
    let model = MlpConfig::new(w.inputs, w.hidden.to_vec(), 10).init::<B>(SEED, device);
    let config = TrainerConfig::new(LR)
        .with_epochs(Some(w.epochs))
        .with_batch_size(w.batch)
        .with_seed(SEED)
        .with_validation(w.validate.then_some(Frequency::Epochs(1)));
    let mut builder =
        SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device.clone())
            .train_data(InMemDataset::new(data.train.clone()), ItemBatcher);
    if w.validate {
        builder = builder.valid_data(InMemDataset::new(data.valid.clone()), ItemBatcher);
    }
    let mut trainer = builder.build().expect("a valid configuration");
    let report = trainer.fit().expect("training runs");
    let loss = trainer
        .state()
        .history
        .last()
        .map_or(f64::NAN, |e| e.train["loss"]);
    (report.steps, loss as f32)
}
