//! The closed forms of PyTorch's `torch.optim.lr_scheduler` classes. Each follows the PyTorch
//! 2.x formula, so a curve matches PyTorch's to floating-point rounding (checked against
//! `tests/it/fixtures/lr_schedules_torch.json`).

use std::f64::consts::PI;

use super::closed_form::ClosedForm;

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

/// How `OneCycleLR` moves between its phase end points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anneal {
    /// Half a cosine.
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

/// `CyclicLR`'s policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CyclicMode {
    /// Same amplitude every cycle.
    Triangular,
    /// Amplitude halved each cycle.
    Triangular2,
    /// Amplitude scaled by `gamma^t`.
    ExpRange(f64),
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
            CyclicMode::ExpRange(gamma) => gamma.powf(t),
        };
        self.base_lr + base_height * scale
    }
}
