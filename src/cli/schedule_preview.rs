//! A schedule's learning rates, step by step: what `trainer schedule` prints and draws.

use trainer_core::schedule::{step_schedule, ScheduleConfig};
use trainer_core::TrainerError;

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The JSON is not a schedule config.
    #[error("the schedule config is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The schedule's parameters are refused.
    #[error(transparent)]
    Schedule(#[from] TrainerError),
    /// A plateau schedule needs one metric per step.
    #[error("{scheduler} reacts to a metric: give one per step with --metrics ({steps} steps, {given} metrics)")]
    MissingMetrics {
        /// The scheduler.
        scheduler: String,
        /// Steps asked for.
        steps: usize,
        /// Metrics given.
        given: usize,
    },
}

/// A schedule's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// The scheduler's PyTorch name.
    pub scheduler: String,
    /// The lr before any step, then after each step.
    pub lrs: Vec<f64>,
}

/// The lr before any step, then after each of `steps` steps (`steps + 1` values). `metrics[k]`
/// is fed to step `k + 1`; schedules that react to a metric need one per step.
pub fn preview(
    config_json: &str,
    base_lr: f64,
    steps: usize,
    metrics: &[f64],
) -> Result<Preview, PreviewError> {
    let config: ScheduleConfig = serde_json::from_str(config_json)?;
    let mut schedule = config.build(base_lr)?;
    if schedule.needs_metric() && metrics.len() < steps {
        return Err(PreviewError::MissingMetrics {
            scheduler: config.name(),
            steps,
            given: metrics.len(),
        });
    }
    let mut lrs = Vec::with_capacity(steps + 1);
    lrs.push(schedule.lr());
    for k in 0..steps {
        step_schedule(schedule.as_mut(), metrics.get(k).copied());
        lrs.push(schedule.lr());
    }
    Ok(Preview {
        scheduler: config.name(),
        lrs,
    })
}
