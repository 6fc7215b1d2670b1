use serde::{Deserialize, Serialize};

use super::check::Check;
use super::{step_schedule, LrSchedule, ScheduleConfig};
use crate::error::{Result, TrainerError};

/// The shape of a warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupMode {
    /// `lr = target · t / W`.
    #[default]
    Linear,
    /// `lr = target · (t / W)²`: slower at first.
    Exponential,
}

/// A linear or quadratic ramp to the base lr over `warmup_steps`, then `then`:
/// `{"scheduler": "Warmup", "params": {"warmup_steps": 100, "mode": "linear", "then": {...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// Steps of the ramp.
    pub warmup_steps: u64,
    /// `linear` (`t/W`) or `exponential` (`(t/W)²`).
    #[serde(default)]
    pub mode: WarmupMode,
    /// The schedule after the warmup, from its step 0; the base lr if absent.
    #[serde(default)]
    pub then: Option<Box<ScheduleConfig>>,
}

impl WarmupConfig {
    pub(crate) fn build(&self, base: f64, check: &Check) -> Result<Box<dyn LrSchedule>> {
        check.at_least_one("warmup_steps", self.warmup_steps)?;
        let then = self.then.as_ref().map(|t| t.build(base)).transpose()?;
        Ok(Box::new(Warmup::new(
            base,
            self.warmup_steps,
            self.mode,
            then,
        )))
    }
}

/// Warms the lr up over `W` optimizer steps, then hands over to another schedule (or stays at
/// the target lr).
///
/// `t` counts optimizer steps from 1: the first optimizer step uses `t = 1` (so
/// `target / W` in linear mode, never 0), step `W` uses the target. From step `W + 1` on, the
/// next schedule runs from its own step 0.
pub struct Warmup {
    target: f64,
    warmup_steps: u64,
    mode: WarmupMode,
    then: Option<Box<dyn LrSchedule>>,
    steps: u64,
}

impl Warmup {
    /// A warmup to `target` over `warmup_steps` steps, then `then` (a constant `target` if none).
    pub fn new(
        target: f64,
        warmup_steps: u64,
        mode: WarmupMode,
        then: Option<Box<dyn LrSchedule>>,
    ) -> Self {
        Self {
            target,
            warmup_steps,
            mode,
            then,
            steps: 0,
        }
    }
}

impl Warmup {
    /// The schedule after the ramp only steps once the ramp is over.
    fn advance(&mut self, metric: Option<f64>) {
        if self.steps >= self.warmup_steps {
            if let Some(then) = &mut self.then {
                step_schedule(then.as_mut(), metric);
            }
        }
        self.steps = self.steps.saturating_add(1);
    }
}

impl LrSchedule for Warmup {
    fn lr(&self) -> f64 {
        if self.steps < self.warmup_steps {
            let fraction = (self.steps as f64 + 1.0) / self.warmup_steps as f64;
            match self.mode {
                WarmupMode::Linear => self.target * fraction,
                WarmupMode::Exponential => self.target * fraction * fraction,
            }
        } else {
            self.then.as_ref().map_or(self.target, |then| then.lr())
        }
    }

    fn step(&mut self) {
        self.advance(None);
    }

    fn step_with_metric(&mut self, metric: f64) {
        self.advance(Some(metric));
    }

    fn needs_metric(&self) -> bool {
        self.then.as_ref().is_some_and(|then| then.needs_metric())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "step": self.steps,
            "then": self.then.as_ref().map(|then| then.state()),
        })
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        let bad = |message: String| TrainerError::State {
            key: "schedule".into(),
            message,
        };
        self.steps = state
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad(format!("warmup state has no step count: {state}")))?;
        if let Some(then) = &mut self.then {
            let inner = state
                .get("then")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            then.load_state(inner)?;
        }
        Ok(())
    }
}
