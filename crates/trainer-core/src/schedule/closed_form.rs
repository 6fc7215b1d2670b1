use serde::{Deserialize, Serialize};

use super::LrSchedule;
use crate::error::{Result, TrainerError};

/// A schedule whose learning rate is a pure function of how many times it has stepped.
///
/// Closed forms make the state a single counter, so a resumed schedule is exact by construction.
pub trait ClosedForm: Send {
    /// The learning rate after `step` calls of `step()` (0: before any).
    fn lr_at(&self, step: u64) -> f64;
}

/// The counter state of a [`ClosedForm`] schedule: `{"step": k}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CounterState {
    step: u64,
}

/// Runs a [`ClosedForm`] as an [`LrSchedule`]: it counts steps and evaluates the closed form.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    form: S,
    step: u64,
}

impl<S: ClosedForm> Counted<S> {
    /// Starts `form` at step 0.
    pub fn new(form: S) -> Self {
        Self { form, step: 0 }
    }
}

impl<S: ClosedForm> LrSchedule for Counted<S> {
    fn lr(&self) -> f64 {
        self.form.lr_at(self.step)
    }

    fn step(&mut self) {
        self.step = self.step.saturating_add(1);
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "step": self.step })
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        let loaded: CounterState =
            serde_json::from_value(state.clone()).map_err(|e| TrainerError::State {
                key: "schedule".into(),
                message: format!("expected {{\"step\": <count>}}, found {state}: {e}"),
            })?;
        self.step = loaded.step;
        Ok(())
    }
}
