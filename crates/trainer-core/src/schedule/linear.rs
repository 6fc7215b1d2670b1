//! `LinearLR`, `ConstantLR`, `PolynomialLR`: factors of the base lr that change over
//! `total_iters` steps, then stay.

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::closed_form::{ClosedForm, Counted};
use super::{defaults, LrSchedule};
use crate::error::Result;

/// `LinearLR(start_factor=1/3, end_factor=1, total_iters=5)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearLrConfig {
    /// Factor at step 0.
    #[serde(default = "defaults::third")]
    pub start_factor: f64,
    /// Factor from `total_iters` on.
    #[serde(default = "defaults::one_f")]
    pub end_factor: f64,
    /// Steps of the ramp.
    #[serde(default = "defaults::five")]
    pub total_iters: u64,
}

impl LinearLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        let (start, end) = (self.start_factor, self.end_factor);
        check.require(
            start.is_finite() && start > 0.0 && start <= 1.0,
            "start_factor",
            start,
            "must be in (0, 1]",
        )?;
        check.require(
            end.is_finite() && (0.0..=1.0).contains(&end),
            "end_factor",
            end,
            "must be in [0, 1]",
        )?;
        check.at_least_one("total_iters", self.total_iters)?;
        let form = LinearLr {
            base,
            start_factor: start,
            end_factor: end,
            total_iters: self.total_iters,
        };
        Ok(Box::new(Counted::new(form)))
    }
}

/// `ConstantLR(factor=1/3, total_iters=5)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantLrConfig {
    /// Factor for the first `total_iters` steps.
    #[serde(default = "defaults::third")]
    pub factor: f64,
    /// Steps with the factor.
    #[serde(default = "defaults::five")]
    pub total_iters: u64,
}

impl ConstantLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        let factor = self.factor;
        check.require(
            factor.is_finite() && (0.0..=1.0).contains(&factor),
            "factor",
            factor,
            "must be in [0, 1]",
        )?;
        Ok(Box::new(Counted::new(ConstantFactorLr {
            base,
            factor,
            total_iters: self.total_iters,
        })))
    }
}

/// `PolynomialLR(total_iters=5, power=1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolynomialLrConfig {
    /// Steps to reach 0.
    #[serde(default = "defaults::five")]
    pub total_iters: u64,
    /// Exponent.
    #[serde(default = "defaults::one_f")]
    pub power: f64,
}

impl PolynomialLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.at_least_one("total_iters", self.total_iters)?;
        check.non_negative("power", self.power)?;
        Ok(Box::new(Counted::new(PolynomialLr {
            base,
            total_iters: self.total_iters,
            power: self.power,
        })))
    }
}

/// `LinearLR`: the factor moves linearly from `start_factor` to `end_factor` over
/// `total_iters` steps, then stays.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearLr {
    pub(crate) base: f64,
    pub(crate) start_factor: f64,
    pub(crate) end_factor: f64,
    pub(crate) total_iters: u64,
}

impl ClosedForm for LinearLr {
    fn lr_at(&self, t: u64) -> f64 {
        let done = t.min(self.total_iters) as f64 / self.total_iters as f64;
        self.base * (self.start_factor + (self.end_factor - self.start_factor) * done)
    }
}

/// `ConstantLR`: `base · factor` for the first `total_iters` steps, then `base`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantFactorLr {
    pub(crate) base: f64,
    pub(crate) factor: f64,
    pub(crate) total_iters: u64,
}

impl ClosedForm for ConstantFactorLr {
    fn lr_at(&self, t: u64) -> f64 {
        if t < self.total_iters {
            self.base * self.factor
        } else {
            self.base
        }
    }
}

/// `PolynomialLR`: `base · (1 − min(t, total_iters) / total_iters)^power`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolynomialLr {
    pub(crate) base: f64,
    pub(crate) total_iters: u64,
    pub(crate) power: f64,
}

impl ClosedForm for PolynomialLr {
    fn lr_at(&self, t: u64) -> f64 {
        let left = 1.0 - t.min(self.total_iters) as f64 / self.total_iters as f64;
        self.base * left.powf(self.power)
    }
}
