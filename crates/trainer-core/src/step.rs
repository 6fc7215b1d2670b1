//! The user's side of a step: [`TrainStep`] and [`ValidStep`], and what they return.

use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Int, Tensor,
};

/// Logits and targets of a classification batch, for accuracy metrics.
#[derive(Debug, Clone)]
pub struct Classification<B: Backend> {
    /// Scores per class, `[batch, classes]`.
    pub logits: Tensor<B, 2>,
    /// The true class of each item, `[batch]`.
    pub targets: Tensor<B, 1, Int>,
}

/// Predictions and targets of a regression batch, for metrics such as mean absolute error.
#[derive(Debug, Clone)]
pub struct Regression<B: Backend> {
    /// Predicted values, `[batch, outputs]`.
    pub predictions: Tensor<B, 2>,
    /// True values, `[batch, outputs]`.
    pub targets: Tensor<B, 2>,
}

/// What a step's items are, beyond the loss: what metrics are computed from.
#[derive(Debug, Clone)]
pub enum Task<B: Backend> {
    /// A loss only (language modelling, a custom objective, ...).
    Loss,
    /// Logits and targets: the trainer reports accuracy, and the macro scores in evaluation.
    Classification(Classification<B>),
    /// Predictions and targets, for user [`Metric`](crate::metric::Metric)s.
    Regression(Regression<B>),
}

/// What one step returns: the loss to minimise and the items metrics are computed from.
#[derive(Debug, Clone)]
pub struct StepOutput<B: Backend> {
    /// The batch's mean loss, a tensor of one element. In training the trainer calls
    /// `backward` on it.
    pub loss: Tensor<B, 1>,
    /// Items in the batch; metrics weight batches by it.
    pub batch_size: usize,
    /// What else the step gives.
    pub task: Task<B>,
}

impl<B: Backend> StepOutput<B> {
    /// An output with a loss only (regression, language modelling, ...).
    pub fn loss(loss: Tensor<B, 1>, batch_size: usize) -> Self {
        Self {
            loss,
            batch_size,
            task: Task::Loss,
        }
    }

    /// A regression output: predictions and targets for user [`Metric`](crate::metric::Metric)s.
    pub fn regression(
        loss: Tensor<B, 1>,
        predictions: Tensor<B, 2>,
        targets: Tensor<B, 2>,
    ) -> Self {
        let batch_size = targets.dims()[0];
        Self {
            loss,
            batch_size,
            task: Task::Regression(Regression {
                predictions,
                targets,
            }),
        }
    }

    /// A classification output: the trainer also reports accuracy.
    pub fn classification(
        loss: Tensor<B, 1>,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
    ) -> Self {
        let batch_size = targets.dims()[0];
        Self {
            loss,
            batch_size,
            task: Task::Classification(Classification { logits, targets }),
        }
    }

    /// The logits and targets, when the task is classification.
    pub fn classification_items(&self) -> Option<&Classification<B>> {
        match &self.task {
            Task::Classification(items) => Some(items),
            _ => None,
        }
    }

    /// The predictions and targets, when the task is regression.
    pub fn regression_items(&self) -> Option<&Regression<B>> {
        match &self.task {
            Task::Regression(items) => Some(items),
            _ => None,
        }
    }
}

impl<B: AutodiffBackend> StepOutput<B> {
    /// The same output on the inner backend, cut from the autodiff graph.
    pub fn detach_inner(&self) -> StepOutput<B::InnerBackend> {
        let task = match &self.task {
            Task::Loss => Task::Loss,
            Task::Classification(c) => Task::Classification(Classification {
                logits: c.logits.clone().inner(),
                targets: c.targets.clone().inner(),
            }),
            Task::Regression(r) => Task::Regression(Regression {
                predictions: r.predictions.clone().inner(),
                targets: r.targets.clone().inner(),
            }),
        };
        StepOutput {
            loss: self.loss.clone().inner(),
            batch_size: self.batch_size,
            task,
        }
    }
}

/// A training step: a batch in, the loss (with its graph) and metric items out.
///
/// The trainer does the rest: backward, gradient accumulation and clipping, the optimizer step and
/// the learning-rate schedule.
pub trait TrainStep<B: AutodiffBackend, I> {
    /// Runs the forward pass on one batch.
    fn step(&self, batch: I) -> StepOutput<B>;
}

/// A validation or test step, on the inner (non-autodiff) backend.
pub trait ValidStep<B: Backend, I> {
    /// Runs the forward pass on one batch.
    fn step(&self, batch: I) -> StepOutput<B>;
}
