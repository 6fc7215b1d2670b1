//! `CyclicLR`: triangle waves between two learning rates.

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::closed_form::{ClosedForm, Counted};
use super::{defaults, LrSchedule};
use crate::error::Result;

/// `CyclicLR(base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
/// gamma=1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CyclicLrConfig {
    /// Lower bound; overrides the base lr.
    pub base_lr: f64,
    /// Upper bound.
    pub max_lr: f64,
    /// Steps going up.
    #[serde(default = "defaults::step_size_up")]
    pub step_size_up: u64,
    /// Steps going down (`step_size_up` if absent).
    #[serde(default)]
    pub step_size_down: Option<u64>,
    /// `triangular`, `triangular2` or `exp_range`.
    #[serde(default)]
    pub mode: CyclicMode,
    /// Factor of `exp_range`.
    #[serde(default = "defaults::one_f")]
    pub gamma: f64,
}

impl CyclicLrConfig {
    pub(crate) fn build(&self, _base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.positive("base_lr", self.base_lr)?;
        check.positive("max_lr", self.max_lr)?;
        check.at_least_one("step_size_up", self.step_size_up)?;
        let step_size_down = self.step_size_down.unwrap_or(self.step_size_up);
        check.at_least_one("step_size_down", step_size_down)?;
        check.positive("gamma", self.gamma)?;
        Ok(Box::new(Counted::new(CyclicLr {
            base_lr: self.base_lr,
            max_lr: self.max_lr,
            step_size_up: self.step_size_up,
            step_size_down,
            mode: self.mode,
            gamma: self.gamma,
        })))
    }
}

/// `CyclicLR`'s policies (`mode`: `"triangular"`, `"triangular2"` or `"exp_range"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Same amplitude every cycle.
    #[default]
    Triangular,
    /// Amplitude halved each cycle.
    Triangular2,
    /// Amplitude scaled by `gamma^t`.
    ExpRange,
}

/// `CyclicLR`: between `base_lr` and `max_lr`, up in `step_size_up` steps, down in
/// `step_size_down`.
#[derive(Debug, Clone, PartialEq)]
pub struct CyclicLr {
    pub(crate) base_lr: f64,
    pub(crate) max_lr: f64,
    pub(crate) step_size_up: u64,
    pub(crate) step_size_down: u64,
    pub(crate) mode: CyclicMode,
    pub(crate) gamma: f64,
}

impl ClosedForm for CyclicLr {
    fn lr_at(&self, t: u64) -> f64 {
        let total = self.step_size_up as f64 + self.step_size_down as f64;
        let step_ratio = self.step_size_up as f64 / total;
        let t = t as f64;
        let cycle = (1.0 + t / total).floor();
        let x = 1.0 + t / total - cycle;
        let scale_factor = if x <= step_ratio {
            x / step_ratio
        } else {
            (x - 1.0) / (step_ratio - 1.0)
        };
        let base_height = (self.max_lr - self.base_lr) * scale_factor;
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => self.gamma.powf(t),
        };
        self.base_lr + base_height * scale
    }
}
