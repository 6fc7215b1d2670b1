use serde::{Deserialize, Serialize};

use super::check::Check;
use super::LrSchedule;
use crate::error::{Result, TrainerError};

/// Whether lower or higher values of the monitored metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` is applied when comparing to the best value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// Relative: better than `best · (1 ∓ threshold)`.
    Rel,
    /// Absolute: better than `best ∓ threshold`.
    Abs,
}

/// The settings of [`ReduceLrOnPlateau`], with PyTorch's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauConfig {
    /// `min` or `max`.
    #[serde(default = "plateau_defaults::mode")]
    pub mode: PlateauMode,
    /// The factor the lr is multiplied by on a plateau, in `(0, 1)`.
    #[serde(default = "plateau_defaults::factor")]
    pub factor: f64,
    /// Steps without improvement before the lr is reduced.
    #[serde(default = "plateau_defaults::patience")]
    pub patience: u64,
    /// The smallest change that counts as an improvement.
    #[serde(default = "plateau_defaults::threshold")]
    pub threshold: f64,
    /// `rel` or `abs`.
    #[serde(default = "plateau_defaults::threshold_mode")]
    pub threshold_mode: ThresholdMode,
    /// Steps to wait after a reduction before counting bad steps again.
    #[serde(default)]
    pub cooldown: u64,
    /// The lr never goes below this.
    #[serde(default)]
    pub min_lr: f64,
    /// A reduction smaller than this is skipped.
    #[serde(default = "plateau_defaults::eps")]
    pub eps: f64,
}

impl PlateauConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        let factor = self.factor;
        check.require(
            factor.is_finite() && factor > 0.0 && factor < 1.0,
            "factor",
            factor,
            "must be in (0, 1)",
        )?;
        check.non_negative("threshold", self.threshold)?;
        check.non_negative("min_lr", self.min_lr)?;
        check.non_negative("eps", self.eps)?;
        Ok(Box::new(ReduceLrOnPlateau::new(self.clone(), base)))
    }
}

mod plateau_defaults {
    use super::{PlateauMode, ThresholdMode};
    pub fn mode() -> PlateauMode {
        PlateauMode::Min
    }
    pub fn factor() -> f64 {
        0.1
    }
    pub fn patience() -> u64 {
        10
    }
    pub fn threshold() -> f64 {
        1e-4
    }
    pub fn threshold_mode() -> ThresholdMode {
        ThresholdMode::Rel
    }
    pub fn eps() -> f64 {
        1e-8
    }
}

/// What a plateau schedule remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PlateauState {
    lr: f64,
    best: Option<f64>,
    bad_steps: u64,
    cooldown_left: u64,
    steps: u64,
}

/// `ReduceLROnPlateau`: multiply the lr by `factor` once the metric has not improved for more
/// than `patience` steps. A NaN metric counts as no improvement.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    state: PlateauState,
}

impl ReduceLrOnPlateau {
    /// Starts at `base_lr`.
    pub fn new(config: PlateauConfig, base_lr: f64) -> Self {
        Self {
            config,
            state: PlateauState {
                lr: base_lr,
                best: None,
                bad_steps: 0,
                cooldown_left: 0,
                steps: 0,
            },
        }
    }

    fn is_better(&self, value: f64) -> bool {
        // PyTorch starts from ±inf (kept as `None`: JSON has no infinity).
        let best = self.state.best.unwrap_or(match self.config.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        });
        let t = self.config.threshold;
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => value < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => value < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => value > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => value > best + t,
        }
    }
}

impl LrSchedule for ReduceLrOnPlateau {
    fn lr(&self) -> f64 {
        self.state.lr
    }

    /// Without a metric nothing can improve: the step counts as a bad one.
    fn step(&mut self) {
        self.step_with_metric(f64::NAN);
    }

    fn step_with_metric(&mut self, metric: f64) {
        self.state.steps = self.state.steps.saturating_add(1);
        if self.is_better(metric) {
            self.state.best = Some(metric);
            self.state.bad_steps = 0;
        } else {
            self.state.bad_steps = self.state.bad_steps.saturating_add(1);
        }
        if self.state.cooldown_left > 0 {
            self.state.cooldown_left -= 1;
            self.state.bad_steps = 0;
        }
        if self.state.bad_steps > self.config.patience {
            let old = self.state.lr;
            let new = (old * self.config.factor).max(self.config.min_lr);
            if old - new > self.config.eps {
                self.state.lr = new;
            }
            self.state.cooldown_left = self.config.cooldown;
            self.state.bad_steps = 0;
        }
    }

    fn needs_metric(&self) -> bool {
        true
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or(serde_json::Value::Null)
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        let loaded: PlateauState =
            serde_json::from_value(state).map_err(|e| TrainerError::State {
                key: "schedule".into(),
                message: format!("ReduceLROnPlateau state: {e}"),
            })?;
        if !loaded.lr.is_finite() || loaded.lr < 0.0 {
            return Err(TrainerError::State {
                key: "schedule".into(),
                message: format!(
                    "ReduceLROnPlateau state: learning rate {} is not a finite number >= 0",
                    loaded.lr
                ),
            });
        }
        self.state = loaded;
        Ok(())
    }
}
