//! `OneCycleLR`: up from `max_lr / div_factor` to `max_lr`, then down to a minimum, in two or
//! three phases.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::closed_form::{ClosedForm, Counted};
use super::{defaults, LrSchedule};
use crate::error::Result;

/// `OneCycleLR(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", three_phase=False,
/// div_factor=25, final_div_factor=1e4)`. The base lr is not used: the cycle starts at
/// `max_lr / div_factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleLrConfig {
    /// Peak lr.
    pub max_lr: f64,
    /// Steps in the cycle. PyTorch refuses to step past it; here the lr stays at its last value
    /// (that of step `total_steps - 1`).
    pub total_steps: u64,
    /// Fraction of steps spent increasing.
    #[serde(default = "defaults::pct_start")]
    pub pct_start: f64,
    /// `cos` or `linear`.
    #[serde(default)]
    pub anneal_strategy: Anneal,
    /// Three phases (up, down to the initial lr, down to the minimum) instead of two.
    #[serde(default)]
    pub three_phase: bool,
    /// Initial lr = `max_lr / div_factor`.
    #[serde(default = "defaults::div_factor")]
    pub div_factor: f64,
    /// Final lr = initial lr / `final_div_factor`.
    #[serde(default = "defaults::final_div_factor")]
    pub final_div_factor: f64,
}

impl OneCycleLrConfig {
    pub(crate) fn build(&self, _base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.positive("max_lr", self.max_lr)?;
        check.at_least_one("total_steps", self.total_steps)?;
        let pct = self.pct_start;
        check.require(
            pct.is_finite() && pct > 0.0 && pct < 1.0,
            "pct_start",
            pct,
            "must be in (0, 1)",
        )?;
        check.positive("div_factor", self.div_factor)?;
        check.positive("final_div_factor", self.final_div_factor)?;
        let form = OneCycleLr::new(
            self.max_lr,
            self.total_steps,
            pct,
            self.anneal_strategy,
            self.three_phase,
            self.div_factor,
            self.final_div_factor,
        );
        // Phases of zero length would divide by zero.
        let mut start = 0.0;
        for &(end, _, _) in &form.phases {
            check.require(
                end > start,
                "total_steps",
                self.total_steps,
                "too few steps for pct_start: a phase would be empty",
            )?;
            start = end;
        }
        Ok(Box::new(Counted::new(form)))
    }
}

/// How `OneCycleLR` moves between its phase end points (`anneal_strategy`: `"cos"` or
/// `"linear"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anneal {
    /// Half a cosine.
    #[default]
    Cos,
    /// A straight line.
    Linear,
}

impl Anneal {
    fn between(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// `OneCycleLR`: warm up from `max_lr / div_factor` to `max_lr` over `pct_start` of the steps,
/// then anneal to `initial / final_div_factor` (three-phase: back to the initial lr first).
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycleLr {
    /// `(end step, start lr, end lr)` per phase, PyTorch's float end steps.
    pub(crate) phases: Vec<(f64, f64, f64)>,
    pub(crate) anneal: Anneal,
}

impl OneCycleLr {
    pub(crate) fn new(
        max_lr: f64,
        total_steps: u64,
        pct_start: f64,
        anneal: Anneal,
        three_phase: bool,
        div_factor: f64,
        final_div_factor: f64,
    ) -> Self {
        let initial = max_lr / div_factor;
        let min = initial / final_div_factor;
        let total = total_steps as f64;
        let phases = if three_phase {
            vec![
                (pct_start * total - 1.0, initial, max_lr),
                (2.0 * pct_start * total - 2.0, max_lr, initial),
                (total - 1.0, initial, min),
            ]
        } else {
            vec![
                (pct_start * total - 1.0, initial, max_lr),
                (total - 1.0, max_lr, min),
            ]
        };
        Self { phases, anneal }
    }
}

impl ClosedForm for OneCycleLr {
    fn lr_at(&self, t: u64) -> f64 {
        let last = self.phases.len() - 1;
        // Past the cycle the lr stays at its final value.
        let t = (t as f64).min(self.phases[last].0);
        let mut start_step = 0.0;
        for (index, &(end_step, start, end)) in self.phases.iter().enumerate() {
            if t <= end_step || index == last {
                let pct = (t - start_step) / (end_step - start_step);
                return self.anneal.between(start, end, pct);
            }
            start_step = end_step;
        }
        unreachable!("the last phase always answers")
    }
}
