//! The trainer's own metrics of classifiers, as implementations of the [`Metric`] trait users
//! implement: accuracy, top-k accuracy, and the confusion counts behind the macro scores. Each
//! batch's statistics are float counts, exact while a window's sums stay below 2^24 in `f32`.

use burn::tensor::{backend::Backend, Tensor};

use super::names::{top_k_accuracy, ACCURACY, CONFUSION};
use super::{ConfusionMatrix, Metric};
use crate::step::StepOutput;

/// `accuracy`: items whose largest logit is their target, over the classified items.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accuracy;

impl<B: Backend> Metric<B> for Accuracy {
    fn name(&self) -> String {
        ACCURACY.into()
    }

    fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>> {
        let classification = output.classification_items()?;
        let predicted = classification.logits.clone().argmax(1).reshape([-1]);
        let hits = predicted
            .equal(classification.targets.clone())
            .float()
            .sum();
        Some(with_count(hits, output.batch_size))
    }

    fn value(&self, sums: &[f64]) -> Option<f64> {
        ratio(sums)
    }
}

/// `top{k}_accuracy`: items whose target is among the `k` largest logits.
#[derive(Debug, Clone, Copy)]
pub struct TopKAccuracy {
    /// How many of the largest logits count.
    pub k: usize,
}

impl<B: Backend> Metric<B> for TopKAccuracy {
    fn name(&self) -> String {
        top_k_accuracy(self.k)
    }

    fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>> {
        let classification = output.classification_items()?;
        let [items, classes] = classification.logits.dims();
        let k = self.k.clamp(1, classes.max(1));
        let (_, top) = classification.logits.clone().topk_with_indices(k, 1);
        let truth = classification
            .targets
            .clone()
            .reshape([items, 1])
            .repeat_dim(1, k);
        let hits = top.equal(truth).any_dim(1).float().sum();
        Some(with_count(hits, output.batch_size))
    }

    fn value(&self, sums: &[f64]) -> Option<f64> {
        ratio(sums)
    }
}

/// The counts of (true, predicted) class pairs of validation and test passes (one `[C, N] ×
/// [N, C]` product per batch), reported as `precision_macro`, `recall_macro` and `f1_macro`
/// (scikit-learn's definitions); the matrix itself is the trainer's `confusion_matrix(split)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfusionCounts;

impl<B: Backend> Metric<B> for ConfusionCounts {
    fn name(&self) -> String {
        CONFUSION.into()
    }

    fn value_names(&self) -> Vec<String> {
        [
            super::names::PRECISION_MACRO,
            super::names::RECALL_MACRO,
            super::names::F1_MACRO,
        ]
        .map(String::from)
        .to_vec()
    }

    fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>> {
        let classification = output.classification_items()?;
        let classes = classification.logits.dims()[1];
        let predicted = classification.logits.clone().argmax(1).reshape([-1]);
        let truth = classification.targets.clone().one_hot::<2>(classes).float();
        let guess = predicted.one_hot::<2>(classes).float();
        Some(truth.transpose().matmul(guess).reshape([-1]))
    }

    fn value(&self, _sums: &[f64]) -> Option<f64> {
        None
    }

    fn values(&self, sums: &[f64]) -> Vec<(String, f64)> {
        ConfusionMatrix::from_sums(sums)
            .map(|m| m.macro_values().into_iter().collect())
            .unwrap_or_default()
    }

    fn on_train(&self) -> bool {
        false
    }
}

/// `[hits, items]` as a 1-D float tensor on the hits' device.
fn with_count<B: Backend>(hits: Tensor<B, 1>, items: usize) -> Tensor<B, 1> {
    let device = hits.device();
    Tensor::cat(vec![hits, Tensor::from_floats([items as f32], &device)], 0)
}

/// `sums[0] / sums[1]`, when there were items.
fn ratio(sums: &[f64]) -> Option<f64> {
    match sums {
        [hits, items] if *items > 0.0 => Some(hits / items),
        _ => None,
    }
}
