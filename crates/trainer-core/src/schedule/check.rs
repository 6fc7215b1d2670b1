//! The checks of schedule parameters: each failure is an [`TrainerError::InvalidSchedule`] that
//! names the scheduler, the parameter and its value.

use crate::error::{Result, TrainerError};

/// Checks the parameters of one scheduler, named in its errors.
pub(crate) struct Check<'a> {
    scheduler: &'a str,
}

impl<'a> Check<'a> {
    pub(crate) fn new(scheduler: &'a str) -> Self {
        Self { scheduler }
    }

    /// The error for `param` holding `value`.
    pub(crate) fn invalid(
        &self,
        param: &str,
        value: impl std::fmt::Debug,
        reason: &str,
    ) -> TrainerError {
        TrainerError::InvalidSchedule {
            scheduler: self.scheduler.to_string(),
            param: param.to_string(),
            value: format!("{value:?}"),
            reason: reason.to_string(),
        }
    }

    /// `value` is finite and above 0.
    pub(crate) fn positive(&self, param: &str, value: f64) -> Result<()> {
        self.require(
            value.is_finite() && value > 0.0,
            param,
            value,
            "must be a finite number > 0",
        )
    }

    /// `value` is at least 1.
    pub(crate) fn at_least_one(&self, param: &str, value: u64) -> Result<()> {
        self.require(value >= 1, param, value, "must be at least 1")
    }

    /// `value` is finite and not below 0.
    pub(crate) fn non_negative(&self, param: &str, value: f64) -> Result<()> {
        self.require(
            value.is_finite() && value >= 0.0,
            param,
            value,
            "must be a finite number >= 0",
        )
    }

    /// `value` is finite and within `low..=high` (or `low..high` / `(low, high]` as `reason` says).
    pub(crate) fn require(
        &self,
        holds: bool,
        param: &str,
        value: impl std::fmt::Debug,
        reason: &str,
    ) -> Result<()> {
        if holds {
            Ok(())
        } else {
            Err(self.invalid(param, value, reason))
        }
    }
}
