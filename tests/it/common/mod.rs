//! A short digits run, shared by the ndarray and wgpu tests.
#![allow(dead_code)]

use crate::support::digits::{self, DigitsBatcher};
use crate::support::mlp::MlpConfig;
use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use trainer::prelude::*;

/// What a short run ends with.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Mean training loss per epoch.
    pub train_losses: Vec<f64>,
    /// Validation loss per epoch.
    pub valid_losses: Vec<f64>,
    /// Test accuracy after training.
    pub test_accuracy: f64,
    /// The trained parameters as little-endian f32 bytes.
    pub weights: Vec<u8>,
}

/// Trains a 64-64-10 MLP with Adam (lr 3e-3, batch 32) on the bundled digits.
pub fn digits_run<B: AutodiffBackend>(
    device: B::Device,
    seed: u64,
    epochs: usize,
    dropout: f64,
) -> RunResult {
    digits_run_replicated::<B>(vec![device], seed, epochs, dropout)
}

/// [`digits_run`] data-parallel: one replica per device (batch 32 each), replicas checked to
/// agree after every optimizer step.
pub fn digits_run_replicated<B: AutodiffBackend>(
    mut devices: Vec<B::Device>,
    seed: u64,
    epochs: usize,
    dropout: f64,
) -> RunResult {
    let device = devices.remove(0);
    let items = digits::load(digits::bundled_path()).unwrap();
    let data = digits::split(items, 0, 0.15, 0.15);
    let model = MlpConfig::new(digits::PIXELS, vec![64], digits::CLASSES)
        .with_dropout(dropout)
        .init::<B>(seed, &device);
    let config = TrainerConfig::new(3e-3)
        .with_epochs(Some(epochs))
        .with_batch_size(32)
        .with_seed(seed)
        .with_replicas(devices.len() + 1);
    let mut trainer = SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
        .train_data(InMemDataset::new(data.train), DigitsBatcher)
        .valid_data(InMemDataset::new(data.valid), DigitsBatcher)
        .test_data(InMemDataset::new(data.test), DigitsBatcher)
        .replica_devices(devices)
        .verify_replicas(true)
        .build()
        .unwrap();
    trainer.fit().unwrap();
    let history = &trainer.state().history;
    RunResult {
        train_losses: history.iter().map(|e| e.train["loss"]).collect(),
        valid_losses: history
            .iter()
            .map(|e| e.valid.as_ref().unwrap()["loss"])
            .collect(),
        test_accuracy: trainer.test().unwrap()["accuracy"],
        weights: trainer.model().parameter_bytes(),
    }
}
