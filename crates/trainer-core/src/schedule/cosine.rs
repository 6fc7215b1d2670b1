//! `CosineAnnealingLR` and `CosineAnnealingWarmRestarts`: half cosines from the base lr down to
//! `eta_min`, periodic or restarting with growing periods.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::closed_form::{ClosedForm, Counted};
use super::{defaults, LrSchedule};
use crate::error::Result;

/// `CosineAnnealingLR(T_max, eta_min=0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineAnnealingLrConfig {
    /// Half period, in steps.
    #[serde(rename = "T_max")]
    pub t_max: u64,
    /// The lowest lr.
    #[serde(default)]
    pub eta_min: f64,
}

impl CosineAnnealingLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.at_least_one("T_max", self.t_max)?;
        check.non_negative("eta_min", self.eta_min)?;
        Ok(Box::new(Counted::new(CosineAnnealingLr {
            base,
            t_max: self.t_max,
            eta_min: self.eta_min,
        })))
    }
}

/// `CosineAnnealingWarmRestarts(T_0, T_mult=1, eta_min=0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineAnnealingWarmRestartsConfig {
    /// First period, in steps.
    #[serde(rename = "T_0")]
    pub t_0: u64,
    /// Period growth factor.
    #[serde(rename = "T_mult", default = "defaults::one")]
    pub t_mult: u64,
    /// The lowest lr.
    #[serde(default)]
    pub eta_min: f64,
}

impl CosineAnnealingWarmRestartsConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.at_least_one("T_0", self.t_0)?;
        check.at_least_one("T_mult", self.t_mult)?;
        check.non_negative("eta_min", self.eta_min)?;
        let form = CosineAnnealingWarmRestarts {
            base,
            t_0: self.t_0,
            t_mult: self.t_mult,
            eta_min: self.eta_min,
        };
        Ok(Box::new(Counted::new(form)))
    }
}

/// `CosineAnnealingLR`: `eta_min + (base − eta_min)(1 + cos(π t / T_max)) / 2`, periodic with
/// period `2·T_max` past `T_max`, as PyTorch's.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealingLr {
    pub(crate) base: f64,
    pub(crate) t_max: u64,
    pub(crate) eta_min: f64,
}

impl ClosedForm for CosineAnnealingLr {
    fn lr_at(&self, t: u64) -> f64 {
        // Past `u64::MAX / 2`, the period is longer than any step count.
        let t = self.t_max.checked_mul(2).map_or(t, |period| t % period);
        self.eta_min
            + (self.base - self.eta_min) * (1.0 + (PI * t as f64 / self.t_max as f64).cos()) / 2.0
    }
}

/// `CosineAnnealingWarmRestarts`: cosine from `base` to `eta_min` over `T_0` steps, then
/// restart with periods multiplied by `T_mult`.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealingWarmRestarts {
    pub(crate) base: f64,
    pub(crate) t_0: u64,
    pub(crate) t_mult: u64,
    pub(crate) eta_min: f64,
}

impl ClosedForm for CosineAnnealingWarmRestarts {
    fn lr_at(&self, t: u64) -> f64 {
        // With T_mult = 1 the periods repeat: one remainder. Otherwise the periods grow
        // geometrically, so the loop runs at most 64 times (saturating: no overflow).
        let (mut t_cur, mut t_i) = (t, self.t_0);
        if self.t_mult == 1 {
            t_cur = t % self.t_0;
        }
        while t_cur >= t_i {
            t_cur -= t_i;
            t_i = t_i.saturating_mul(self.t_mult);
        }
        self.eta_min
            + (self.base - self.eta_min) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
    }
}
