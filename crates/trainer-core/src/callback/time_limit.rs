use std::time::{Duration, Instant};

use super::{Callback, Context};
use crate::error::Result;

/// Stops the run once it has trained for a given time (Lightning's `max_time`), after the
/// batch during which the time ran out.
///
/// The time counts from the start of the run: a run resumed from a checkpoint goes on from the
/// training time the checkpoint recorded (`TrainingState::elapsed_seconds`). Validation inside
/// the run counts; the time before `fit` does not.
#[derive(Debug, Clone, Copy)]
pub struct TimeLimit {
    limit: Duration,
    /// When this `fit` began, and the run's training time then.
    began: Option<(Instant, f64)>,
}

impl TimeLimit {
    /// Stops after `limit` of training.
    pub fn new(limit: Duration) -> Self {
        Self { limit, began: None }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl Callback for TimeLimit {
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.began = Some((Instant::now(), ctx.state.elapsed_seconds));
        Ok(())
    }

    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let Some((began, before)) = self.began else {
            return Ok(());
        };
        let trained = before + began.elapsed().as_secs_f64();
        if trained >= self.limit.as_secs_f64() {
            ctx.control.stop(format!(
                "time limit of {:?} reached at step {}",
                self.limit, ctx.state.global_step
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{AvailableMetrics, Control, LatestMetrics};
    use crate::config::TrainerConfig;
    use crate::state::TrainingState;

    /// Begins a run whose checkpoint recorded `before` seconds, then ends one batch.
    fn stop_after_one_batch(limit: Duration, before: f64) -> Option<String> {
        let mut callback = TimeLimit::new(limit);
        let (available, metrics, config) = (
            AvailableMetrics::default(),
            LatestMetrics::default(),
            TrainerConfig::new(0.1),
        );
        let mut state = TrainingState {
            elapsed_seconds: before,
            ..TrainingState::default()
        };
        let mut control = Control::default();
        let mut ctx = |state: &TrainingState, control: &mut Control, begin: bool| {
            let mut ctx = Context {
                state,
                metrics: &metrics,
                learning_rate: 0.1,
                control,
                available: &available,
                config: &config,
                batches_per_epoch: None,
            };
            if begin {
                callback.on_train_begin(&mut ctx).unwrap();
            } else {
                callback.on_batch_end(&mut ctx).unwrap();
            }
        };
        ctx(&state, &mut control, true);
        state.global_step = 1;
        ctx(&state, &mut control, false);
        control.stop_requested().map(str::to_string)
    }

    #[test]
    fn stops_once_the_time_is_spent_and_counts_a_resumed_runs_time() {
        let reason = stop_after_one_batch(Duration::ZERO, 0.0).expect("a stop");
        assert!(
            reason.contains("time limit") && reason.contains("step 1"),
            "{reason}"
        );
        assert_eq!(stop_after_one_batch(Duration::from_secs(3600), 0.0), None);
        // 50 s of a 60 s budget were spent before the resume: 10 s left.
        assert_eq!(stop_after_one_batch(Duration::from_secs(60), 50.0), None);
        assert!(stop_after_one_batch(Duration::from_secs(60), 61.0).is_some());
    }
}
