use serde::{Deserialize, Serialize};

use super::check::Check;
use super::{step_schedule, LrSchedule, ScheduleConfig};
use crate::error::{Result, TrainerError};

fn bad_state(message: String) -> TrainerError {
    TrainerError::State {
        key: "schedule".into(),
        message,
    }
}

fn child_states(state: &serde_json::Value, count: usize) -> Result<Vec<serde_json::Value>> {
    let children = state
        .get("schedulers")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad_state(format!("expected a `schedulers` array, found {state}")))?;
    if children.len() != count {
        return Err(bad_state(format!(
            "state holds {} schedules, this schedule has {count}",
            children.len()
        )));
    }
    Ok(children.clone())
}

/// `SequentialLR(schedulers, milestones)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialLrConfig {
    /// The schedules, in order.
    pub schedulers: Vec<ScheduleConfig>,
    /// Steps at which the next schedule takes over; one fewer than the schedules.
    pub milestones: Vec<u64>,
}

impl SequentialLrConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        let (schedulers, milestones) = (&self.schedulers, &self.milestones);
        check.require(
            !schedulers.is_empty(),
            "schedulers",
            schedulers.len(),
            "needs at least one schedule",
        )?;
        let needed = format!(
            "{} schedules need {} milestones",
            schedulers.len(),
            schedulers.len() - 1
        );
        check.require(
            milestones.len() + 1 == schedulers.len(),
            "milestones",
            milestones,
            &needed,
        )?;
        let increasing =
            milestones.windows(2).all(|w| w[0] < w[1]) && milestones.first() != Some(&0);
        check.require(
            increasing,
            "milestones",
            milestones,
            "must be strictly increasing and above 0",
        )?;
        let built = schedulers
            .iter()
            .map(|s| s.build(base))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Sequential::new(built, milestones.clone())))
    }
}

/// `ChainedScheduler(schedulers)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainedSchedulerConfig {
    /// The schedules whose factors multiply.
    pub schedulers: Vec<ScheduleConfig>,
}

impl ChainedSchedulerConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        let schedulers = &self.schedulers;
        check.require(
            !schedulers.is_empty(),
            "schedulers",
            schedulers.len(),
            "needs at least one schedule",
        )?;
        let built = schedulers
            .iter()
            .map(|s| s.build(base))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Chained::new(base, built)))
    }
}

/// `SequentialLR`: one schedule after another. At each milestone the next schedule takes over,
/// starting from its own step 0, as PyTorch's does.
pub struct Sequential {
    schedules: Vec<Box<dyn LrSchedule>>,
    milestones: Vec<u64>,
    steps: u64,
}

impl Sequential {
    /// `schedules.len()` must be `milestones.len() + 1`, milestones increasing (the config
    /// checks both).
    pub fn new(schedules: Vec<Box<dyn LrSchedule>>, milestones: Vec<u64>) -> Self {
        Self {
            schedules,
            milestones,
            steps: 0,
        }
    }

    fn active(&self) -> usize {
        self.milestones.iter().filter(|&&m| m <= self.steps).count()
    }
}

impl LrSchedule for Sequential {
    fn lr(&self) -> f64 {
        self.schedules[self.active()].lr()
    }

    fn step(&mut self) {
        self.step_inner(None);
    }

    fn step_with_metric(&mut self, metric: f64) {
        self.step_inner(Some(metric));
    }

    fn needs_metric(&self) -> bool {
        self.schedules.iter().any(|s| s.needs_metric())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "step": self.steps,
            "schedulers": self.schedules.iter().map(|s| s.state()).collect::<Vec<_>>(),
        })
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.steps = state
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad_state(format!("SequentialLR state has no step count: {state}")))?;
        let children = child_states(&state, self.schedules.len())?;
        for (schedule, child) in self.schedules.iter_mut().zip(children) {
            schedule.load_state(child)?;
        }
        Ok(())
    }
}

impl Sequential {
    fn step_inner(&mut self, metric: Option<f64>) {
        let before = self.active();
        self.steps = self.steps.saturating_add(1);
        // Crossing a milestone hands over to the next schedule at its step 0: the one that ran
        // does not step again.
        if self.active() == before {
            step_schedule(self.schedules[before].as_mut(), metric);
        }
    }
}

/// `ChainedScheduler`: every schedule steps together and their factors multiply:
/// `lr = base · Π (lrᵢ / base)`.
pub struct Chained {
    base: f64,
    schedules: Vec<Box<dyn LrSchedule>>,
}

impl Chained {
    /// Chains schedules that were all built with the same `base` lr.
    pub fn new(base: f64, schedules: Vec<Box<dyn LrSchedule>>) -> Self {
        Self { base, schedules }
    }
}

impl LrSchedule for Chained {
    fn lr(&self) -> f64 {
        self.schedules
            .iter()
            .fold(self.base, |lr, s| lr * (s.lr() / self.base))
    }

    fn step(&mut self) {
        self.schedules.iter_mut().for_each(|s| s.step());
    }

    fn step_with_metric(&mut self, metric: f64) {
        self.schedules
            .iter_mut()
            .for_each(|s| s.step_with_metric(metric));
    }

    fn needs_metric(&self) -> bool {
        self.schedules.iter().any(|s| s.needs_metric())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "schedulers": self.schedules.iter().map(|s| s.state()).collect::<Vec<_>>(),
        })
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        let children = child_states(&state, self.schedules.len())?;
        for (schedule, child) in self.schedules.iter_mut().zip(children) {
            schedule.load_state(child)?;
        }
        Ok(())
    }
}
