use serde::{Deserialize, Serialize};

use super::closed_form::Counted;
use super::compose::{Chained, Sequential};
use super::plateau::{PlateauConfig, ReduceLrOnPlateau};
use super::torch::{
    Anneal, ConstantFactorLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, CyclicLr, CyclicMode,
    ExponentialLr, LinearLr, MultiStepLr, OneCycleLr, PolynomialLr, StepLr,
};
use super::warmup::{Warmup, WarmupMode};
use super::{ConstantLr, LrSchedule};
use crate::error::{Result, TrainerError};

/// A learning-rate schedule as JSON, with PyTorch's scheduler and parameter names.
///
/// `{"scheduler": "StepLR", "params": {"step_size": 3, "gamma": 0.5}}`; nested schedules of
/// `SequentialLR` and `ChainedScheduler` may also be written as `["StepLR", {...}]` pairs, as in
/// PyTorch-made reference files. The base learning rate is given beside it (the trainer's
/// `learning_rate`). [`build`](ScheduleConfig::build) checks every parameter.
///
/// ```
/// use trainer_core::schedule::{LrSchedule, ScheduleConfig};
///
/// let config: ScheduleConfig =
///     serde_json::from_str(r#"{"scheduler": "StepLR", "params": {"step_size": 2, "gamma": 0.5}}"#).unwrap();
/// let mut schedule = config.build(0.1).unwrap();
/// let mut lrs = vec![schedule.lr()];
/// for _ in 0..4 {
///     schedule.step();
///     lrs.push(schedule.lr());
/// }
/// assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "scheduler", content = "params", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// The base lr throughout: `{"scheduler": "Constant"}`.
    #[serde(rename = "Constant")]
    #[default]
    Constant,
    /// `StepLR(step_size, gamma=0.1)`.
    #[serde(rename = "StepLR")]
    Step {
        /// Steps between decays.
        step_size: u64,
        /// Decay factor.
        #[serde(default = "defaults::gamma")]
        gamma: f64,
    },
    /// `MultiStepLR(milestones, gamma=0.1)`.
    #[serde(rename = "MultiStepLR")]
    MultiStep {
        /// Steps at which the lr decays; a repeated one decays that many times.
        milestones: Vec<u64>,
        /// Decay factor.
        #[serde(default = "defaults::gamma")]
        gamma: f64,
    },
    /// `ExponentialLR(gamma)`.
    #[serde(rename = "ExponentialLR")]
    Exponential {
        /// Factor per step.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max, eta_min=0)`.
    #[serde(rename = "CosineAnnealingLR")]
    CosineAnnealing {
        /// Half period, in steps.
        #[serde(rename = "T_max")]
        t_max: u64,
        /// The lowest lr.
        #[serde(default)]
        eta_min: f64,
    },
    /// `CosineAnnealingWarmRestarts(T_0, T_mult=1, eta_min=0)`.
    #[serde(rename = "CosineAnnealingWarmRestarts")]
    CosineAnnealingWarmRestarts {
        /// First period, in steps.
        #[serde(rename = "T_0")]
        t_0: u64,
        /// Period growth factor.
        #[serde(rename = "T_mult", default = "defaults::one")]
        t_mult: u64,
        /// The lowest lr.
        #[serde(default)]
        eta_min: f64,
    },
    /// `LinearLR(start_factor=1/3, end_factor=1, total_iters=5)`.
    #[serde(rename = "LinearLR")]
    Linear {
        /// Factor at step 0.
        #[serde(default = "defaults::third")]
        start_factor: f64,
        /// Factor from `total_iters` on.
        #[serde(default = "defaults::one_f")]
        end_factor: f64,
        /// Steps of the ramp.
        #[serde(default = "defaults::five")]
        total_iters: u64,
    },
    /// `ConstantLR(factor=1/3, total_iters=5)`.
    #[serde(rename = "ConstantLR")]
    ConstantFactor {
        /// Factor for the first `total_iters` steps.
        #[serde(default = "defaults::third")]
        factor: f64,
        /// Steps with the factor.
        #[serde(default = "defaults::five")]
        total_iters: u64,
    },
    /// `PolynomialLR(total_iters=5, power=1)`.
    #[serde(rename = "PolynomialLR")]
    Polynomial {
        /// Steps to reach 0.
        #[serde(default = "defaults::five")]
        total_iters: u64,
        /// Exponent.
        #[serde(default = "defaults::one_f")]
        power: f64,
    },
    /// `OneCycleLR(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", three_phase=False,
    /// div_factor=25, final_div_factor=1e4)`. The base lr is not used: the cycle starts at
    /// `max_lr / div_factor`.
    #[serde(rename = "OneCycleLR")]
    OneCycle {
        /// Peak lr.
        max_lr: f64,
        /// Steps in the cycle. PyTorch refuses to step past it; here the lr stays at its last
        /// value (that of step `total_steps - 1`).
        total_steps: u64,
        /// Fraction of steps spent increasing.
        #[serde(default = "defaults::pct_start")]
        pct_start: f64,
        /// `cos` or `linear`.
        #[serde(default = "defaults::anneal")]
        anneal_strategy: String,
        /// Three phases (up, down to the initial lr, down to the minimum) instead of two.
        #[serde(default)]
        three_phase: bool,
        /// Initial lr = `max_lr / div_factor`.
        #[serde(default = "defaults::div_factor")]
        div_factor: f64,
        /// Final lr = initial lr / `final_div_factor`.
        #[serde(default = "defaults::final_div_factor")]
        final_div_factor: f64,
    },
    /// `CyclicLR(base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
    /// gamma=1)`.
    #[serde(rename = "CyclicLR")]
    Cyclic {
        /// Lower bound; overrides the base lr.
        base_lr: f64,
        /// Upper bound.
        max_lr: f64,
        /// Steps going up.
        #[serde(default = "defaults::step_size_up")]
        step_size_up: u64,
        /// Steps going down (`step_size_up` if absent).
        #[serde(default)]
        step_size_down: Option<u64>,
        /// `triangular`, `triangular2` or `exp_range`.
        #[serde(default = "defaults::cyclic_mode")]
        mode: String,
        /// Factor of `exp_range`.
        #[serde(default = "defaults::one_f")]
        gamma: f64,
    },
    /// `ReduceLROnPlateau(mode="min", factor=0.1, patience=10, threshold=1e-4,
    /// threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)`.
    #[serde(rename = "ReduceLROnPlateau")]
    Plateau(PlateauConfig),
    /// A linear or quadratic ramp to the base lr over `warmup_steps`, then `then`.
    #[serde(rename = "Warmup")]
    Warmup {
        /// Steps of the ramp.
        warmup_steps: u64,
        /// `linear` (`t/W`) or `exponential` (`(t/W)²`).
        #[serde(default)]
        mode: WarmupMode,
        /// The schedule after the warmup, from its step 0; the base lr if absent.
        #[serde(default)]
        then: Option<Box<ScheduleConfig>>,
    },
    /// `SequentialLR(schedulers, milestones)`.
    #[serde(rename = "SequentialLR")]
    Sequential {
        /// The schedules, in order.
        schedulers: Vec<ScheduleConfig>,
        /// Steps at which the next schedule takes over; one fewer than the schedules.
        milestones: Vec<u64>,
    },
    /// `ChainedScheduler(schedulers)`.
    #[serde(rename = "ChainedScheduler")]
    Chained {
        /// The schedules whose factors multiply.
        schedulers: Vec<ScheduleConfig>,
    },
}

mod defaults {
    pub fn gamma() -> f64 {
        0.1
    }
    pub fn one() -> u64 {
        1
    }
    pub fn one_f() -> f64 {
        1.0
    }
    pub fn third() -> f64 {
        1.0 / 3.0
    }
    pub fn five() -> u64 {
        5
    }
    pub fn pct_start() -> f64 {
        0.3
    }
    pub fn anneal() -> String {
        "cos".into()
    }
    pub fn div_factor() -> f64 {
        25.0
    }
    pub fn final_div_factor() -> f64 {
        1e4
    }
    pub fn step_size_up() -> u64 {
        2000
    }
    pub fn cyclic_mode() -> String {
        "triangular".into()
    }
}

fn invalid(
    scheduler: &str,
    param: &str,
    value: impl std::fmt::Debug,
    reason: &str,
) -> TrainerError {
    TrainerError::InvalidSchedule {
        scheduler: scheduler.to_string(),
        param: param.to_string(),
        value: format!("{value:?}"),
        reason: reason.to_string(),
    }
}

fn positive(scheduler: &str, param: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            scheduler,
            param,
            value,
            "must be a finite number > 0",
        ))
    }
}

fn at_least_one(scheduler: &str, param: &str, value: u64) -> Result<()> {
    if value >= 1 {
        Ok(())
    } else {
        Err(invalid(scheduler, param, value, "must be at least 1"))
    }
}

fn non_negative(scheduler: &str, param: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(
            scheduler,
            param,
            value,
            "must be a finite number >= 0",
        ))
    }
}

impl ScheduleConfig {
    /// The PyTorch name of the schedule.
    pub fn name(&self) -> &'static str {
        match self {
            ScheduleConfig::Constant => "Constant",
            ScheduleConfig::Step { .. } => "StepLR",
            ScheduleConfig::MultiStep { .. } => "MultiStepLR",
            ScheduleConfig::Exponential { .. } => "ExponentialLR",
            ScheduleConfig::CosineAnnealing { .. } => "CosineAnnealingLR",
            ScheduleConfig::CosineAnnealingWarmRestarts { .. } => "CosineAnnealingWarmRestarts",
            ScheduleConfig::Linear { .. } => "LinearLR",
            ScheduleConfig::ConstantFactor { .. } => "ConstantLR",
            ScheduleConfig::Polynomial { .. } => "PolynomialLR",
            ScheduleConfig::OneCycle { .. } => "OneCycleLR",
            ScheduleConfig::Cyclic { .. } => "CyclicLR",
            ScheduleConfig::Plateau(_) => "ReduceLROnPlateau",
            ScheduleConfig::Warmup { .. } => "Warmup",
            ScheduleConfig::Sequential { .. } => "SequentialLR",
            ScheduleConfig::Chained { .. } => "ChainedScheduler",
        }
    }

    /// Checks the parameters and makes the schedule, starting from `base_lr`. A bad parameter is
    /// an [`TrainerError::InvalidSchedule`] naming the scheduler, the parameter and its value.
    pub fn build(&self, base_lr: f64) -> Result<Box<dyn LrSchedule>> {
        let name = self.name();
        positive(name, "base_lr", base_lr)?;
        Ok(match self {
            ScheduleConfig::Constant => Box::new(ConstantLr::constant(base_lr)),
            ScheduleConfig::Step { step_size, gamma } => {
                at_least_one(name, "step_size", *step_size)?;
                positive(name, "gamma", *gamma)?;
                Box::new(Counted::new(StepLr {
                    base: base_lr,
                    step_size: *step_size,
                    gamma: *gamma,
                }))
            }
            ScheduleConfig::MultiStep { milestones, gamma } => {
                positive(name, "gamma", *gamma)?;
                if milestones.windows(2).any(|w| w[1] < w[0]) {
                    return Err(invalid(
                        name,
                        "milestones",
                        milestones,
                        "must be in increasing order",
                    ));
                }
                Box::new(Counted::new(MultiStepLr {
                    base: base_lr,
                    milestones: milestones.clone(),
                    gamma: *gamma,
                }))
            }
            ScheduleConfig::Exponential { gamma } => {
                positive(name, "gamma", *gamma)?;
                Box::new(Counted::new(ExponentialLr {
                    base: base_lr,
                    gamma: *gamma,
                }))
            }
            ScheduleConfig::CosineAnnealing { t_max, eta_min } => {
                at_least_one(name, "T_max", *t_max)?;
                non_negative(name, "eta_min", *eta_min)?;
                Box::new(Counted::new(CosineAnnealingLr {
                    base: base_lr,
                    t_max: *t_max,
                    eta_min: *eta_min,
                }))
            }
            ScheduleConfig::CosineAnnealingWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => {
                at_least_one(name, "T_0", *t_0)?;
                at_least_one(name, "T_mult", *t_mult)?;
                non_negative(name, "eta_min", *eta_min)?;
                Box::new(Counted::new(CosineAnnealingWarmRestarts {
                    base: base_lr,
                    t_0: *t_0,
                    t_mult: *t_mult,
                    eta_min: *eta_min,
                }))
            }
            ScheduleConfig::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                if !(start_factor.is_finite() && *start_factor > 0.0 && *start_factor <= 1.0) {
                    return Err(invalid(
                        name,
                        "start_factor",
                        start_factor,
                        "must be in (0, 1]",
                    ));
                }
                if !(end_factor.is_finite() && (0.0..=1.0).contains(end_factor)) {
                    return Err(invalid(name, "end_factor", end_factor, "must be in [0, 1]"));
                }
                at_least_one(name, "total_iters", *total_iters)?;
                Box::new(Counted::new(LinearLr {
                    base: base_lr,
                    start_factor: *start_factor,
                    end_factor: *end_factor,
                    total_iters: *total_iters,
                }))
            }
            ScheduleConfig::ConstantFactor {
                factor,
                total_iters,
            } => {
                if !(factor.is_finite() && (0.0..=1.0).contains(factor)) {
                    return Err(invalid(name, "factor", factor, "must be in [0, 1]"));
                }
                Box::new(Counted::new(ConstantFactorLr {
                    base: base_lr,
                    factor: *factor,
                    total_iters: *total_iters,
                }))
            }
            ScheduleConfig::Polynomial { total_iters, power } => {
                at_least_one(name, "total_iters", *total_iters)?;
                non_negative(name, "power", *power)?;
                Box::new(Counted::new(PolynomialLr {
                    base: base_lr,
                    total_iters: *total_iters,
                    power: *power,
                }))
            }
            ScheduleConfig::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal_strategy,
                three_phase,
                div_factor,
                final_div_factor,
            } => {
                positive(name, "max_lr", *max_lr)?;
                at_least_one(name, "total_steps", *total_steps)?;
                if !(pct_start.is_finite() && *pct_start > 0.0 && *pct_start < 1.0) {
                    return Err(invalid(name, "pct_start", pct_start, "must be in (0, 1)"));
                }
                let anneal = match anneal_strategy.as_str() {
                    "cos" => Anneal::Cos,
                    "linear" => Anneal::Linear,
                    _ => {
                        return Err(invalid(
                            name,
                            "anneal_strategy",
                            anneal_strategy,
                            "must be \"cos\" or \"linear\"",
                        ))
                    }
                };
                positive(name, "div_factor", *div_factor)?;
                positive(name, "final_div_factor", *final_div_factor)?;
                let form = OneCycleLr::new(
                    *max_lr,
                    *total_steps,
                    *pct_start,
                    anneal,
                    *three_phase,
                    *div_factor,
                    *final_div_factor,
                );
                // Phases of zero length would divide by zero.
                let mut start = 0.0;
                for &(end, _, _) in &form.phases {
                    if end <= start {
                        return Err(invalid(
                            name,
                            "total_steps",
                            total_steps,
                            "too few steps for pct_start: a phase would be empty",
                        ));
                    }
                    start = end;
                }
                Box::new(Counted::new(form))
            }
            ScheduleConfig::Cyclic {
                base_lr: low,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                gamma,
            } => {
                positive(name, "base_lr", *low)?;
                positive(name, "max_lr", *max_lr)?;
                at_least_one(name, "step_size_up", *step_size_up)?;
                let step_size_down = step_size_down.unwrap_or(*step_size_up);
                at_least_one(name, "step_size_down", step_size_down)?;
                positive(name, "gamma", *gamma)?;
                let mode = match mode.as_str() {
                    "triangular" => CyclicMode::Triangular,
                    "triangular2" => CyclicMode::Triangular2,
                    "exp_range" => CyclicMode::ExpRange(*gamma),
                    _ => {
                        return Err(invalid(
                            name,
                            "mode",
                            mode,
                            "must be \"triangular\", \"triangular2\" or \"exp_range\"",
                        ))
                    }
                };
                Box::new(Counted::new(CyclicLr {
                    base_lr: *low,
                    max_lr: *max_lr,
                    step_size_up: *step_size_up,
                    step_size_down,
                    mode,
                }))
            }
            ScheduleConfig::Plateau(config) => {
                if !(config.factor.is_finite() && config.factor > 0.0 && config.factor < 1.0) {
                    return Err(invalid(name, "factor", config.factor, "must be in (0, 1)"));
                }
                non_negative(name, "threshold", config.threshold)?;
                non_negative(name, "min_lr", config.min_lr)?;
                non_negative(name, "eps", config.eps)?;
                Box::new(ReduceLrOnPlateau::new(config.clone(), base_lr))
            }
            ScheduleConfig::Warmup {
                warmup_steps,
                mode,
                then,
            } => {
                at_least_one(name, "warmup_steps", *warmup_steps)?;
                let then = then.as_ref().map(|t| t.build(base_lr)).transpose()?;
                Box::new(Warmup::new(base_lr, *warmup_steps, *mode, then))
            }
            ScheduleConfig::Sequential {
                schedulers,
                milestones,
            } => {
                if schedulers.is_empty() {
                    return Err(invalid(
                        name,
                        "schedulers",
                        schedulers.len(),
                        "needs at least one schedule",
                    ));
                }
                if milestones.len() + 1 != schedulers.len() {
                    return Err(invalid(
                        name,
                        "milestones",
                        milestones,
                        &format!(
                            "{} schedules need {} milestones",
                            schedulers.len(),
                            schedulers.len() - 1
                        ),
                    ));
                }
                if milestones.windows(2).any(|w| w[1] <= w[0]) || milestones.first() == Some(&0) {
                    return Err(invalid(
                        name,
                        "milestones",
                        milestones,
                        "must be strictly increasing and above 0",
                    ));
                }
                let built = schedulers
                    .iter()
                    .map(|s| s.build(base_lr))
                    .collect::<Result<Vec<_>>>()?;
                Box::new(Sequential::new(built, milestones.clone()))
            }
            ScheduleConfig::Chained { schedulers } => {
                if schedulers.is_empty() {
                    return Err(invalid(
                        name,
                        "schedulers",
                        schedulers.len(),
                        "needs at least one schedule",
                    ));
                }
                let built = schedulers
                    .iter()
                    .map(|s| s.build(base_lr))
                    .collect::<Result<Vec<_>>>()?;
                Box::new(Chained::new(base_lr, built))
            }
        })
    }
}
