//! The learning-rate range test (Leslie Smith's; Lightning's `lr_find`, fastai's `lr_find`): an
//! exponential sweep of the learning rate over a number of training steps, on a copy of the model
//! and the optimizer, with the loss smoothed; the suggestion is the rate where the smoothed loss
//! falls fastest.

use burn::optim::GradientsParams;
use burn::tensor::{backend::AutodiffBackend, ElementConversion};

use super::supervised::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer, BACKEND_RNG};
use crate::data::{mix_seed, DataCursor};
use crate::error::{Result, TrainerError};
use crate::step::TrainStep;

/// Settings of [`SupervisedTrainer::find_lr`], Lightning's defaults where it has them.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFinderConfig {
    /// The first learning rate of the sweep.
    pub min_lr: f64,
    /// The last learning rate of the sweep.
    pub max_lr: f64,
    /// Training steps of the sweep (fewer when the loss diverges first).
    pub steps: usize,
    /// The loss's exponential smoothing (the weight of the past, in `[0, 1)`).
    pub smoothing: f64,
    /// Stop when the smoothed loss exceeds this multiple of the best smoothed loss.
    pub divergence: f64,
    /// Steps left out at the start and at the end when looking for the steepest fall (the start
    /// is noise, the end diverges).
    pub skip: (usize, usize),
}

impl Default for LrFinderConfig {
    fn default() -> Self {
        Self {
            min_lr: 1e-8,
            max_lr: 1.0,
            steps: 100,
            smoothing: 0.98,
            divergence: 4.0,
            skip: (10, 1),
        }
    }
}

/// What a range test found.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFinderResult {
    /// The learning rate of each step done.
    pub lrs: Vec<f64>,
    /// Each step's loss.
    pub losses: Vec<f64>,
    /// The smoothed (bias-corrected) loss at each step.
    pub smoothed: Vec<f64>,
    /// The learning rate at the steepest fall of the smoothed loss, when there were enough steps.
    pub suggestion: Option<f64>,
    /// Whether the sweep stopped because the loss diverged.
    pub diverged: bool,
}

impl LrFinderConfig {
    fn check(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, reason: &str| {
            Err(TrainerError::InvalidConfig {
                field,
                value,
                reason: reason.into(),
            })
        };
        if !(self.min_lr.is_finite()
            && self.min_lr > 0.0
            && self.max_lr.is_finite()
            && self.max_lr > self.min_lr)
        {
            return bad(
                "lr_finder.min_lr",
                format!("{}..{}", self.min_lr, self.max_lr),
                "needs 0 < min_lr < max_lr, both finite",
            );
        }
        if self.steps < 2 || self.steps > 100_000 {
            return bad(
                "lr_finder.steps",
                self.steps.to_string(),
                "must be between 2 and 100000",
            );
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return bad(
                "lr_finder.smoothing",
                self.smoothing.to_string(),
                "must be in [0, 1)",
            );
        }
        if !(self.divergence.is_finite() && self.divergence > 1.0) {
            return bad(
                "lr_finder.divergence",
                self.divergence.to_string(),
                "must be a finite number above 1",
            );
        }
        Ok(())
    }

    /// The learning rate of step `i`: exponential from `min_lr` to `max_lr`.
    fn lr_at(&self, i: usize) -> f64 {
        let position = i as f64 / (self.steps - 1) as f64;
        self.min_lr * (self.max_lr / self.min_lr).powf(position)
    }
}

/// The steepest fall of `smoothed` (the most negative central difference, per step of the
/// exponential sweep, so per equal step of log lr), leaving out `skip` at each end.
pub fn steepest_fall(smoothed: &[f64], skip: (usize, usize)) -> Option<usize> {
    let end = smoothed.len().checked_sub(skip.1)?;
    if end < skip.0 + 3 {
        return None;
    }
    (skip.0 + 1..end - 1)
        .map(|i| (i, (smoothed[i + 1] - smoothed[i - 1]) / 2.0))
        .filter(|(_, slope)| slope.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// Runs a learning-rate range test on copies of the model and optimizer: `config.steps`
    /// training steps over the training data (its epoch-0 order, then the next epochs'), the
    /// learning rate rising exponentially from `min_lr` to `max_lr`, until the smoothed loss
    /// exceeds `divergence` × its best. The trainer (weights, optimizer state, schedule,
    /// callbacks, position) is left as it was. Reads the loss back every step: it is a
    /// measurement, not training.
    pub fn find_lr(&self, config: &LrFinderConfig) -> Result<LrFinderResult> {
        config.check()?;
        let loader = self.train.as_ref().ok_or(TrainerError::MissingData {
            split: "train",
            builder_method: "train_data",
        })?;
        let mut model = self.model().clone();
        let mut optimizer = self.optimizer.clone();
        let seed = self.engine.config.seed;
        let mut result = LrFinderResult {
            lrs: Vec::new(),
            losses: Vec::new(),
            smoothed: Vec::new(),
            suggestion: None,
            diverged: false,
        };
        let (mut average, mut best) = (0.0, f64::INFINITY);
        let mut epoch = 0;
        let mut batches = loader.iter(DataCursor::epoch_start(epoch))?;
        for i in 0..config.steps {
            let batch = match batches.next() {
                Some(batch) => batch?,
                None => {
                    epoch += 1;
                    batches = loader.iter(DataCursor::epoch_start(epoch))?;
                    batches.next().ok_or(TrainerError::Data {
                        split: "train",
                        message: "an epoch without batches".into(),
                    })??
                }
            };
            let lr = config.lr_at(i);
            let output = {
                let _rng = BACKEND_RNG.acquire(None);
                B::seed(
                    &self.device,
                    mix_seed(mix_seed(seed ^ 0x1f1d, epoch as u64), i as u64),
                );
                TrainStep::step(&model, batch)
            };
            let loss: f64 = output.loss.clone().into_scalar().elem();
            let grads = GradientsParams::from_grads(output.loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            average = config.smoothing * average + (1.0 - config.smoothing) * loss;
            let smoothed = average / (1.0 - config.smoothing.powi(i as i32 + 1));
            result.lrs.push(lr);
            result.losses.push(loss);
            result.smoothed.push(smoothed);
            if !smoothed.is_finite() || smoothed > config.divergence * best {
                result.diverged = true;
                break;
            }
            best = best.min(smoothed);
        }
        result.suggestion = steepest_fall(&result.smoothed, config.skip).map(|i| result.lrs[i]);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::{steepest_fall, LrFinderConfig};

    #[test]
    fn the_sweep_is_exponential_and_the_steepest_fall_is_found() {
        let config = LrFinderConfig {
            min_lr: 1e-6,
            max_lr: 1.0,
            steps: 7,
            ..Default::default()
        };
        let lrs: Vec<f64> = (0..7).map(|i| config.lr_at(i)).collect();
        assert_eq!((lrs[0], lrs[6]), (1e-6, 1.0));
        assert!((lrs[3] - 1e-3).abs() < 1e-15);
        // Falls slowly, then fastest around index 5 ((3.0 - 4.6) / 2), then rises.
        let smoothed = [5.0, 4.9, 4.8, 4.7, 4.6, 4.0, 3.0, 2.5, 2.4, 9.0];
        assert_eq!(steepest_fall(&smoothed, (0, 1)), Some(5));
        assert_eq!(
            steepest_fall(&smoothed, (8, 1)),
            None,
            "too few points left"
        );
    }
}
