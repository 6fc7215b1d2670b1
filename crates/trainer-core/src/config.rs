//! [`TrainerConfig`]: every knob of a training run, serde-friendly and validated.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};
use crate::schedule::ScheduleConfig;

/// How often something happens: every N optimizer steps, or every N epochs.
///
/// In JSON: `{"steps": 100}` or `{"epochs": 1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every N optimizer steps.
    Steps(usize),
    /// Every N epochs, at the epoch's end.
    Epochs(usize),
}

impl Frequency {
    /// Whether it fires after optimizer step `global_step` (counted from 1).
    pub fn fires_at_step(&self, global_step: usize) -> bool {
        matches!(self, Frequency::Steps(n) if *n > 0 && global_step.is_multiple_of(*n))
    }

    /// Whether it fires at the end of epoch `epoch` (counted from 1).
    pub fn fires_at_epoch_end(&self, epoch: usize) -> bool {
        matches!(self, Frequency::Epochs(n) if *n > 0 && epoch.is_multiple_of(*n))
    }

    fn count(&self) -> usize {
        match self {
            Frequency::Steps(n) | Frequency::Epochs(n) => *n,
        }
    }
}

/// Gradient clipping applied before each optimizer step.
///
/// In JSON: `{"norm": 1.0}` or `{"value": 0.5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientClipping {
    /// Scale all gradients together so that their global L2 norm is at most this value,
    /// as PyTorch's `clip_grad_norm_` does: `g *= min(1, max_norm / (norm + 1e-6))`.
    Norm(f64),
    /// Clamp every gradient element into `[-value, value]`, as `clip_grad_value_`.
    Value(f64),
}

/// When the learning-rate schedule advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleInterval {
    /// After every optimizer step (the default).
    #[default]
    Step,
    /// After every epoch.
    Epoch,
}

/// The configuration of a training run.
///
/// Build it with [`TrainerConfig::new`] and the `with_*` methods, or read it from JSON; either way
/// call [`validate`](TrainerConfig::validate) (the trainer's builder does) before use.
///
/// ```
/// use trainer_core::{Frequency, TrainerConfig};
///
/// let config = TrainerConfig::new(1e-3)
///     .with_epochs(Some(10))
///     .with_batch_size(64)
///     .with_validation(Some(Frequency::Epochs(1)));
/// config.validate().unwrap();
///
/// let json = r#"{"epochs": 3, "batch_size": 32, "learning_rate": 0.01}"#;
/// let config: TrainerConfig = serde_json::from_str(json).unwrap();
/// assert_eq!(config.batch_size, 32);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Number of epochs; `None` when `max_steps` alone ends the run.
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps, even mid-epoch.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Items per batch.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Base learning rate (what a constant schedule returns).
    pub learning_rate: f64,
    /// When to run validation; `None` never validates during `fit`.
    #[serde(default = "defaults::validation")]
    pub validation: Option<Frequency>,
    /// When to write a checkpoint; `None` never does on its own.
    #[serde(default)]
    pub checkpoint: Option<Frequency>,
    /// Epochs without improvement of the validation loss before early stopping; `None` is off.
    #[serde(default)]
    pub early_stopping_patience: Option<usize>,
    /// Seed for data order, parameter initialisation hooks and the backend's random ops.
    #[serde(default)]
    pub seed: u64,
    /// Batches whose gradients are summed (each loss scaled by 1/N) before one optimizer step.
    #[serde(default = "defaults::one")]
    pub gradient_accumulation: usize,
    /// Gradient clipping; `None` is off.
    #[serde(default)]
    pub gradient_clipping: Option<GradientClipping>,
    /// Read training metrics back from the device every N optimizer steps.
    #[serde(default = "defaults::log_every")]
    pub log_every: usize,
    /// The learning-rate schedule, with PyTorch's names; `None` keeps `learning_rate` constant.
    /// Its base lr is `learning_rate`.
    #[serde(default)]
    pub lr_schedule: Option<ScheduleConfig>,
    /// When the learning-rate schedule advances.
    #[serde(default)]
    pub schedule_interval: ScheduleInterval,
    /// Batches built ahead of the step on the loader's background thread.
    #[serde(default = "defaults::prefetch")]
    pub prefetch_batches: usize,
    /// Drop the last, smaller batch of each training epoch.
    #[serde(default)]
    pub drop_last: bool,
    /// Replicas training in step (data parallel): each takes `batch_size` items per batch, so an
    /// optimizer step sees `replicas * batch_size`. 1 trains on one device. The devices are the
    /// builder's ([`replica_devices`](crate::SupervisedTrainerBuilder::replica_devices)).
    #[serde(default = "defaults::one", skip_serializing_if = "defaults::is_one")]
    pub replicas: usize,
}

mod defaults {
    use super::Frequency;
    pub fn batch_size() -> usize {
        32
    }
    pub fn validation() -> Option<Frequency> {
        Some(Frequency::Epochs(1))
    }
    pub fn is_one(value: &usize) -> bool {
        *value == 1
    }
    pub fn one() -> usize {
        1
    }
    pub fn log_every() -> usize {
        50
    }
    pub fn prefetch() -> usize {
        2
    }
}

/// The most batches a data loader builds ahead (each is held in memory).
pub const MAX_PREFETCH_BATCHES: usize = 1024;

/// The most replicas a run may train with (each is a thread with its own copy of the model).
pub const MAX_REPLICAS: usize = 256;

impl TrainerConfig {
    /// A config with the given learning rate, one epoch and the documented defaults.
    pub fn new(learning_rate: f64) -> Self {
        Self {
            epochs: Some(1),
            max_steps: None,
            batch_size: defaults::batch_size(),
            learning_rate,
            validation: defaults::validation(),
            checkpoint: None,
            early_stopping_patience: None,
            seed: 0,
            gradient_accumulation: 1,
            gradient_clipping: None,
            log_every: defaults::log_every(),
            lr_schedule: None,
            schedule_interval: ScheduleInterval::Step,
            prefetch_batches: defaults::prefetch(),
            drop_last: false,
            replicas: 1,
        }
    }

    /// Sets [`epochs`](Self::epochs).
    pub fn with_epochs(mut self, epochs: Option<usize>) -> Self {
        self.epochs = epochs;
        self
    }
    /// Sets [`max_steps`](Self::max_steps).
    pub fn with_max_steps(mut self, max_steps: Option<usize>) -> Self {
        self.max_steps = max_steps;
        self
    }
    /// Sets [`batch_size`](Self::batch_size).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
    /// Sets [`learning_rate`](Self::learning_rate).
    pub fn with_learning_rate(mut self, learning_rate: f64) -> Self {
        self.learning_rate = learning_rate;
        self
    }
    /// Sets [`validation`](Self::validation).
    pub fn with_validation(mut self, validation: Option<Frequency>) -> Self {
        self.validation = validation;
        self
    }
    /// Sets [`checkpoint`](Self::checkpoint).
    pub fn with_checkpoint(mut self, checkpoint: Option<Frequency>) -> Self {
        self.checkpoint = checkpoint;
        self
    }
    /// Sets [`early_stopping_patience`](Self::early_stopping_patience).
    pub fn with_early_stopping_patience(mut self, patience: Option<usize>) -> Self {
        self.early_stopping_patience = patience;
        self
    }
    /// Sets [`seed`](Self::seed).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sets [`gradient_accumulation`](Self::gradient_accumulation).
    pub fn with_gradient_accumulation(mut self, batches: usize) -> Self {
        self.gradient_accumulation = batches;
        self
    }
    /// Sets [`gradient_clipping`](Self::gradient_clipping).
    pub fn with_gradient_clipping(mut self, clipping: Option<GradientClipping>) -> Self {
        self.gradient_clipping = clipping;
        self
    }
    /// Sets [`log_every`](Self::log_every).
    pub fn with_log_every(mut self, steps: usize) -> Self {
        self.log_every = steps;
        self
    }
    /// Sets [`lr_schedule`](Self::lr_schedule).
    pub fn with_lr_schedule(mut self, schedule: Option<ScheduleConfig>) -> Self {
        self.lr_schedule = schedule;
        self
    }
    /// Sets [`schedule_interval`](Self::schedule_interval).
    pub fn with_schedule_interval(mut self, interval: ScheduleInterval) -> Self {
        self.schedule_interval = interval;
        self
    }
    /// Sets [`prefetch_batches`](Self::prefetch_batches).
    pub fn with_prefetch_batches(mut self, batches: usize) -> Self {
        self.prefetch_batches = batches;
        self
    }
    /// Sets [`drop_last`](Self::drop_last).
    pub fn with_drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Sets [`replicas`](Self::replicas).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Checks every field (numbers that size memory are bounded); the first bad one is returned as
    /// [`TrainerError::InvalidConfig`] naming the field and its value.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &'static str, value: impl std::fmt::Debug, reason: &str) -> Result<()> {
            Err(TrainerError::InvalidConfig {
                field,
                value: format!("{value:?}"),
                reason: reason.to_string(),
            })
        }
        match (self.epochs, self.max_steps) {
            (None, None) => {
                return bad(
                    "epochs",
                    self.epochs,
                    "set `epochs` or `max_steps`, or both",
                );
            }
            (Some(0), _) => return bad("epochs", self.epochs, "must be at least 1"),
            (_, Some(0)) => return bad("max_steps", self.max_steps, "must be at least 1"),
            _ => {}
        }
        if self.batch_size == 0 {
            return bad("batch_size", self.batch_size, "must be at least 1");
        }
        if !self.learning_rate.is_finite() || self.learning_rate <= 0.0 {
            return bad(
                "learning_rate",
                self.learning_rate,
                "must be a finite number greater than 0",
            );
        }
        if let Some(f) = self.validation {
            if f.count() == 0 {
                return bad("validation", f, "the frequency must be at least 1");
            }
        }
        if let Some(f) = self.checkpoint {
            if f.count() == 0 {
                return bad("checkpoint", f, "the frequency must be at least 1");
            }
        }
        if self.early_stopping_patience.is_some() && self.validation.is_none() {
            return bad(
                "early_stopping_patience",
                self.early_stopping_patience,
                "early stopping watches the validation loss: set `validation` too",
            );
        }
        if self.gradient_accumulation == 0 {
            return bad(
                "gradient_accumulation",
                self.gradient_accumulation,
                "must be at least 1",
            );
        }
        match self.gradient_clipping {
            Some(GradientClipping::Norm(v)) if !v.is_finite() || v <= 0.0 => {
                return bad(
                    "gradient_clipping",
                    self.gradient_clipping,
                    "the norm must be finite and > 0",
                );
            }
            Some(GradientClipping::Value(v)) if !v.is_finite() || v <= 0.0 => {
                return bad(
                    "gradient_clipping",
                    self.gradient_clipping,
                    "the value must be finite and > 0",
                );
            }
            _ => {}
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return bad(
                "replicas",
                self.replicas,
                &format!("must be from 1 to {MAX_REPLICAS}"),
            );
        }
        if self.log_every == 0 {
            return bad("log_every", self.log_every, "must be at least 1");
        }
        if let Some(schedule) = &self.lr_schedule {
            schedule.build(self.learning_rate)?;
        }
        if self.prefetch_batches == 0 || self.prefetch_batches > MAX_PREFETCH_BATCHES {
            return bad(
                "prefetch_batches",
                self.prefetch_batches,
                &format!(
                    "must be between 1 and {MAX_PREFETCH_BATCHES} (each batch is held in memory)"
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Frequency;

    #[test]
    fn a_frequency_fires_on_its_multiples_and_only_of_its_kind() {
        let steps = Frequency::Steps(5);
        assert_eq!(
            (1..=20)
                .filter(|&s| steps.fires_at_step(s))
                .collect::<Vec<_>>(),
            [5, 10, 15, 20]
        );
        assert!(
            !steps.fires_at_epoch_end(5),
            "a step frequency never fires at epoch ends"
        );
        let epochs = Frequency::Epochs(2);
        assert_eq!(
            (1..=6)
                .filter(|&e| epochs.fires_at_epoch_end(e))
                .collect::<Vec<_>>(),
            [2, 4, 6]
        );
        assert!(!epochs.fires_at_step(2));
        // A zero frequency (refused by validation) fires never rather than dividing by zero.
        assert!(
            !Frequency::Steps(0).fires_at_step(0) && !Frequency::Epochs(0).fires_at_epoch_end(3)
        );
    }
}
