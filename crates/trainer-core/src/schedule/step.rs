//! `StepLR`, `MultiStepLR`, `ExponentialLR`: decays by a factor, at a period, at milestones, or
//! every step.

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::closed_form::{ClosedForm, Counted};
use super::{defaults, LrSchedule};
use crate::error::Result;

/// `StepLR(step_size, gamma=0.1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLrConfig {
    /// Steps between decays.
    pub step_size: u64,
    /// Decay factor.
    #[serde(default = "defaults::gamma")]
    pub gamma: f64,
}

impl StepLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.at_least_one("step_size", self.step_size)?;
        check.positive("gamma", self.gamma)?;
        Ok(Box::new(Counted::new(StepLr {
            base,
            step_size: self.step_size,
            gamma: self.gamma,
        })))
    }
}

/// `MultiStepLR(milestones, gamma=0.1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStepLrConfig {
    /// Steps at which the lr decays; a repeated one decays that many times.
    pub milestones: Vec<u64>,
    /// Decay factor.
    #[serde(default = "defaults::gamma")]
    pub gamma: f64,
}

impl MultiStepLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.positive("gamma", self.gamma)?;
        let increasing = self.milestones.windows(2).all(|w| w[0] <= w[1]);
        check.require(
            increasing,
            "milestones",
            &self.milestones,
            "must be in increasing order",
        )?;
        Ok(Box::new(Counted::new(MultiStepLr {
            base,
            milestones: self.milestones.clone(),
            gamma: self.gamma,
        })))
    }
}

/// `ExponentialLR(gamma)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialLrConfig {
    /// Factor per step.
    pub gamma: f64,
}

impl ExponentialLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.positive("gamma", self.gamma)?;
        Ok(Box::new(Counted::new(ExponentialLr {
            base,
            gamma: self.gamma,
        })))
    }
}

/// `StepLR`: `base · gamma^⌊t / step_size⌋`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLr {
    pub(crate) base: f64,
    pub(crate) step_size: u64,
    pub(crate) gamma: f64,
}

impl ClosedForm for StepLr {
    fn lr_at(&self, t: u64) -> f64 {
        self.base * power(self.gamma, t / self.step_size)
    }
}

/// `gamma^n`: `powi` (as the PyTorch curves were matched with) while `n` fits its `i32`, else
/// `powf`; a huge `n`, from a restored step counter, never wraps around.
fn power(gamma: f64, n: u64) -> f64 {
    match i32::try_from(n) {
        Ok(n) => gamma.powi(n),
        Err(_) => gamma.powf(n as f64),
    }
}

/// `MultiStepLR`: `base · gamma^(milestones ≤ t)`; a repeated milestone counts as often as it
/// appears.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepLr {
    pub(crate) base: f64,
    pub(crate) milestones: Vec<u64>,
    pub(crate) gamma: f64,
}

impl ClosedForm for MultiStepLr {
    fn lr_at(&self, t: u64) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= t).count();
        self.base * power(self.gamma, passed as u64)
    }
}

/// `ExponentialLR`: `base · gamma^t`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialLr {
    pub(crate) base: f64,
    pub(crate) gamma: f64,
}

impl ClosedForm for ExponentialLr {
    fn lr_at(&self, t: u64) -> f64 {
        self.base * power(self.gamma, t)
    }
}
