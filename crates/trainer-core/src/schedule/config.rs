//! [`ScheduleConfig`]: every schedule by its PyTorch name, as JSON. Each variant's parameters
//! live with the schedule they build (`step.rs`, `cosine.rs`, ...).

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::compose::{ChainedSchedulerConfig, SequentialLrConfig};
use super::cosine::{CosineAnnealingLrConfig, CosineAnnealingWarmRestartsConfig};
use super::cyclic::CyclicLrConfig;
use super::linear::{ConstantLrConfig, LinearLrConfig, PolynomialLrConfig};
use super::one_cycle::OneCycleLrConfig;
use super::plateau::PlateauConfig;
use super::step::{ExponentialLrConfig, MultiStepLrConfig, StepLrConfig};
use super::warmup::WarmupConfig;
use super::{ConstantLr, LrSchedule};
use crate::error::Result;

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
/// assert_eq!(config.name(), "StepLR");
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
    #[default]
    Constant,
    /// `StepLR(step_size, gamma=0.1)`.
    #[serde(rename = "StepLR")]
    Step(StepLrConfig),
    /// `MultiStepLR(milestones, gamma=0.1)`.
    #[serde(rename = "MultiStepLR")]
    MultiStep(MultiStepLrConfig),
    /// `ExponentialLR(gamma)`.
    #[serde(rename = "ExponentialLR")]
    Exponential(ExponentialLrConfig),
    /// `CosineAnnealingLR(T_max, eta_min=0)`.
    #[serde(rename = "CosineAnnealingLR")]
    CosineAnnealing(CosineAnnealingLrConfig),
    /// `CosineAnnealingWarmRestarts(T_0, T_mult=1, eta_min=0)`.
    #[serde(rename = "CosineAnnealingWarmRestarts")]
    CosineAnnealingWarmRestarts(CosineAnnealingWarmRestartsConfig),
    /// `LinearLR(start_factor=1/3, end_factor=1, total_iters=5)`.
    #[serde(rename = "LinearLR")]
    Linear(LinearLrConfig),
    /// `ConstantLR(factor=1/3, total_iters=5)`.
    #[serde(rename = "ConstantLR")]
    ConstantFactor(ConstantLrConfig),
    /// `PolynomialLR(total_iters=5, power=1)`.
    #[serde(rename = "PolynomialLR")]
    Polynomial(PolynomialLrConfig),
    /// `OneCycleLR(max_lr, total_steps, ...)`.
    #[serde(rename = "OneCycleLR")]
    OneCycle(OneCycleLrConfig),
    /// `CyclicLR(base_lr, max_lr, ...)`.
    #[serde(rename = "CyclicLR")]
    Cyclic(CyclicLrConfig),
    /// `ReduceLROnPlateau(mode="min", factor=0.1, patience=10, threshold=1e-4,
    /// threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)`.
    #[serde(rename = "ReduceLROnPlateau")]
    Plateau(PlateauConfig),
    /// A linear or quadratic ramp to the base lr, then another schedule.
    Warmup(WarmupConfig),
    /// `SequentialLR(schedulers, milestones)`.
    #[serde(rename = "SequentialLR")]
    Sequential(SequentialLrConfig),
    /// `ChainedScheduler(schedulers)`.
    #[serde(rename = "ChainedScheduler")]
    Chained(ChainedSchedulerConfig),
}

impl ScheduleConfig {
    /// The schedule's name as the JSON spells it (PyTorch's class name): read from its serde
    /// form, so that there is one list of names.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|value| value.get("scheduler")?.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Checks the parameters and makes the schedule, starting from `base_lr`. A bad parameter is
    /// a [`TrainerError::InvalidSchedule`](crate::TrainerError::InvalidSchedule) naming the
    /// scheduler, the parameter and its value.
    pub fn build(&self, base_lr: f64) -> Result<Box<dyn LrSchedule>> {
        let name = self.name();
        let check = Check::new(&name);
        check.positive("base_lr", base_lr)?;
        match self {
            ScheduleConfig::Constant => Ok(Box::new(ConstantLr::constant(base_lr))),
            ScheduleConfig::Step(params) => params.build(base_lr, &check),
            ScheduleConfig::MultiStep(params) => params.build(base_lr, &check),
            ScheduleConfig::Exponential(params) => params.build(base_lr, &check),
            ScheduleConfig::CosineAnnealing(params) => params.build(base_lr, &check),
            ScheduleConfig::CosineAnnealingWarmRestarts(params) => params.build(base_lr, &check),
            ScheduleConfig::Linear(params) => params.build(base_lr, &check),
            ScheduleConfig::ConstantFactor(params) => params.build(base_lr, &check),
            ScheduleConfig::Polynomial(params) => params.build(base_lr, &check),
            ScheduleConfig::OneCycle(params) => params.build(base_lr, &check),
            ScheduleConfig::Cyclic(params) => params.build(base_lr, &check),
            ScheduleConfig::Plateau(params) => params.build(base_lr, &check),
            ScheduleConfig::Warmup(params) => params.build(base_lr, &check),
            ScheduleConfig::Sequential(params) => params.build(base_lr, &check),
            ScheduleConfig::Chained(params) => params.build(base_lr, &check),
        }
    }
}
