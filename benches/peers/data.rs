//! The two workloads of the peer comparison and their data.
//!
//! - A: the digits MLP 64-128-10, batch 32, Adam, 20 epochs (800 steps: 40 batches of the 1,257
//!   training digits, the last one short) with validation on the 270 validation digits after each
//!   epoch.
//! - B: an MLP 784-512-512-10, batch 256, 300 Adam steps (10 epochs of 30 batches) on synthetic
//!   MNIST-sized vectors: ten Gaussian clusters, so that the loss falls. Kernel-bound.
//!
//! Shared with `examples/peer_workload.rs`, which uses a part of it.
#![allow(dead_code)]

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::support::digits::{self, DigitItem, DigitsBatch};

/// Learning rate of every runner.
pub const LR: f64 = 1e-3;
/// Seed of every runner's weights and data order.
pub const SEED: u64 = 1;

/// One workload: the model's widths, the batch, the epochs, and whether each epoch validates.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// `A` or `B`.
    pub name: &'static str,
    /// Input features.
    pub inputs: usize,
    /// Hidden layer widths.
    pub hidden: &'static [usize],
    /// Items per batch.
    pub batch: usize,
    /// Passes over the training items.
    pub epochs: usize,
    /// Whether a validation pass follows each epoch.
    pub validate: bool,
}

/// Workload A.
pub const A: Workload = Workload {
    name: "A",
    inputs: digits::PIXELS,
    hidden: &[128],
    batch: 32,
    epochs: 20,
    validate: true,
};

/// Workload B.
pub const B: Workload = Workload {
    name: "B",
    inputs: 784,
    hidden: &[512, 512],
    batch: 256,
    epochs: 10,
    validate: false,
};

/// One item: features and a class.
#[derive(Debug, Clone)]
pub struct Item {
    /// Input features.
    pub features: Vec<f32>,
    /// Class, 0..9.
    pub label: u8,
}

/// Training and validation items of a workload.
pub struct Data {
    /// Training items.
    pub train: Vec<Item>,
    /// Validation items (empty when the workload does not validate).
    pub valid: Vec<Item>,
}

impl Workload {
    /// Optimizer steps of a run: every batch of every epoch, the last short one included.
    pub fn steps(&self, train_items: usize) -> usize {
        self.epochs * train_items.div_ceil(self.batch)
    }

    /// The workload's data.
    pub fn data(&self) -> Data {
        if self.inputs == digits::PIXELS {
            let items = digits::load(digits::bundled_path()).expect("bundled digits");
            let splits = digits::split(items, 0, 0.15, 0.15);
            let convert = |items: Vec<DigitItem>| {
                items
                    .into_iter()
                    .map(|i| Item {
                        features: i.pixels.to_vec(),
                        label: i.label,
                    })
                    .collect()
            };
            Data {
                train: convert(splits.train),
                valid: convert(splits.valid),
            }
        } else {
            Data {
                train: clusters(self.inputs, 30 * self.batch),
                valid: Vec::new(),
            }
        }
    }
}

/// `n` vectors of `dim` features around ten random centres (splitmix64 and Box-Muller: the same
/// data in Rust and in `benches/peers.py`, which reads it from the file this program writes).
fn clusters(dim: usize, n: usize) -> Vec<Item> {
    let mut state = 0x5EED_u64;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = move || {
        let (u, v) = (uniform().max(1e-300), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let centres: Vec<Vec<f64>> = (0..10)
        .map(|_| (0..dim).map(|_| normal() * 0.5).collect())
        .collect();
    (0..n)
        .map(|i| {
            let label = (i % 10) as u8;
            let features = centres[label as usize]
                .iter()
                .map(|c| (c + normal()) as f32)
                .collect();
            Item { features, label }
        })
        .collect()
}

/// Stacks items into the digits batch type (any width) that the support MLP trains on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemBatcher;

impl<B: Backend> Batcher<B, Item, DigitsBatch<B>> for ItemBatcher {
    fn batch(&self, items: Vec<Item>, device: &B::Device) -> DigitsBatch<B> {
        let (n, dim) = (items.len(), items[0].features.len());
        let mut features = Vec::with_capacity(n * dim);
        for item in &items {
            features.extend_from_slice(&item.features);
        }
        let labels: Vec<i64> = items.iter().map(|i| i64::from(i.label)).collect();
        DigitsBatch {
            images: Tensor::from_data(TensorData::new(features, [n, dim]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// Writes the training items as raw little-endian `f32` features then `u8` labels, for the
/// PyTorch runners to train on the same data.
pub fn write_raw(items: &[Item], path: &std::path::Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    for item in items {
        for value in &item.features {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
    bytes.extend(items.iter().map(|i| i.label));
    std::fs::write(path, bytes)
}
