use serde::{Deserialize, Serialize};

use super::LrSchedule;
use crate::error::{Result, TrainerError};

/// The same learning rate at every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstantLr {
    lr: f64,
    step: u64,
}

impl ConstantLr {
    /// A schedule that always returns `lr`.
    pub fn new(lr: f64) -> Self {
        Self { lr, step: 0 }
    }
}

impl LrSchedule for ConstantLr {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn step(&mut self) {
        self.step += 1;
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "step": self.step })
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.step = state
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| TrainerError::State {
                key: "schedule".into(),
                message: format!("expected {{\"step\": <count>}}, found {state}"),
            })?;
        Ok(())
    }
}
