//! Learning-rate schedules: PyTorch's, a warmup, and their compositions, all resumable.
//!
//! Closed forms wherever PyTorch's schedule has one, so a schedule's state is a step counter and
//! a resume is exact. [`ScheduleConfig`] reads them from JSON with PyTorch's names.

mod check;
mod closed_form;
mod compose;
mod config;
mod constant;
mod cosine;
mod cyclic;
mod linear;
mod one_cycle;
mod plateau;
mod step;
mod warmup;

pub use closed_form::{ClosedForm, Counted};
pub use compose::{Chained, ChainedSchedulerConfig, Sequential, SequentialLrConfig};
pub use config::ScheduleConfig;
pub use constant::{Constant, ConstantLr};
pub use cosine::{
    CosineAnnealingLr, CosineAnnealingLrConfig, CosineAnnealingWarmRestarts,
    CosineAnnealingWarmRestartsConfig,
};
pub use cyclic::{CyclicLr, CyclicLrConfig, CyclicMode};
pub use linear::{
    ConstantFactorLr, ConstantLrConfig, LinearLr, LinearLrConfig, PolynomialLr, PolynomialLrConfig,
};
pub use one_cycle::{Anneal, OneCycleLr, OneCycleLrConfig};
pub use plateau::{PlateauConfig, PlateauMode, ReduceLrOnPlateau, ThresholdMode};
pub use step::{
    ExponentialLr, ExponentialLrConfig, MultiStepLr, MultiStepLrConfig, StepLr, StepLrConfig,
};
pub use warmup::{Warmup, WarmupConfig, WarmupMode};

/// Defaults of PyTorch's parameters, for serde.
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
    pub fn div_factor() -> f64 {
        25.0
    }
    pub fn final_div_factor() -> f64 {
        1e4
    }
    pub fn step_size_up() -> u64 {
        2000
    }
}

use crate::error::Result;

/// Steps `schedule` once, with the metric when there is one.
pub fn step_schedule(schedule: &mut dyn LrSchedule, metric: Option<f64>) {
    match metric {
        Some(metric) => schedule.step_with_metric(metric),
        None => schedule.step(),
    }
}

/// A learning-rate schedule: the lr for the next optimizer step, and how it advances.
///
/// The trainer asks [`lr`](LrSchedule::lr) before each optimizer step and calls
/// [`step`](LrSchedule::step) after each step or epoch, as
/// [`TrainerConfig::schedule_interval`](crate::TrainerConfig::schedule_interval) says; a schedule
/// that [`needs_metric`](LrSchedule::needs_metric) is stepped after each validation instead, with
/// the validation loss. Its [`state`](LrSchedule::state) goes into checkpoints.
pub trait LrSchedule: Send {
    /// The current learning rate.
    fn lr(&self) -> f64;

    /// Advances by one step (or epoch).
    fn step(&mut self);

    /// Advances by one step, given the monitored metric; schedules that react to a metric
    /// (plateau) override it, the others just step.
    fn step_with_metric(&mut self, metric: f64) {
        let _ = metric;
        self.step();
    }

    /// Whether the schedule wants the monitored metric at each step.
    fn needs_metric(&self) -> bool {
        false
    }

    /// The state needed to resume exactly.
    fn state(&self) -> serde_json::Value;

    /// Restores what [`state`](LrSchedule::state) returned.
    fn load_state(&mut self, state: serde_json::Value) -> Result<()>;
}
