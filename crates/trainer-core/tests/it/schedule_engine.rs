//! Schedules inside the trainer: the lr reaches every optimizer step, per step or per epoch, and
//! plateau schedules see the validation loss.

use crate::common;

use std::sync::{Arc, Mutex};

use common::*;
use trainer_core::callback::{Callback, Context};
use trainer_core::prelude::*;
use trainer_core::schedule::ScheduleConfig;
use trainer_core::ScheduleInterval;

/// Records the lr each batch starts with.
#[derive(Clone, Default)]
struct LrSeen(Arc<Mutex<Vec<f64>>>);

impl Callback for LrSeen {
    fn on_batch_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.0.lock().unwrap().push(ctx.learning_rate);
        Ok(())
    }
}

fn schedule(json: &str) -> Option<ScheduleConfig> {
    Some(serde_json::from_str(json).unwrap())
}

#[test]
fn the_schedule_steps_per_optimizer_step_and_its_lr_reaches_the_optimizer() {
    let seen = LrSeen::default();
    let config = TrainerConfig::new(0.1)
        .with_epochs(Some(2))
        .with_batch_size(4)
        .with_lr_schedule(schedule(
            r#"{"scheduler": "StepLR", "params": {"step_size": 1, "gamma": 0.5}}"#,
        ));
    let mut t = trainer(config.clone(), 8, vec![Box::new(seen.clone())]);
    t.fit().unwrap();
    assert_eq!(*seen.0.lock().unwrap(), vec![0.1, 0.05, 0.025, 0.0125]);

    // The first step of the schedule is a step with lr 0.1; the second one is not.
    let one_step = |config: TrainerConfig| {
        let mut t = trainer(config.with_epochs(None).with_max_steps(Some(1)), 8, vec![]);
        t.fit().unwrap();
        t.model().weights()
    };
    assert_eq!(
        one_step(config.clone()),
        one_step(TrainerConfig::new(0.1).with_batch_size(4))
    );
    let two_steps = |config: TrainerConfig| {
        let mut t = trainer(config.with_epochs(None).with_max_steps(Some(2)), 8, vec![]);
        t.fit().unwrap();
        t.model().weights()
    };
    assert_ne!(
        two_steps(config),
        two_steps(TrainerConfig::new(0.1).with_batch_size(4))
    );
}

/// Records the `lr` of the training metrics read back after each batch.
#[derive(Clone, Default)]
struct LrLogged(Arc<Mutex<Vec<f64>>>);

impl Callback for LrLogged {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        let lr = ctx
            .metrics
            .train()
            .and_then(|m| m.get("lr"))
            .copied()
            .unwrap_or(f64::NAN);
        self.0.lock().unwrap().push(lr);
        Ok(())
    }
}

#[test]
fn the_logged_lr_is_the_one_each_step_used() {
    let logged = LrLogged::default();
    let config = TrainerConfig::new(0.1)
        .with_epochs(Some(2))
        .with_batch_size(4)
        .with_log_every(1)
        .with_lr_schedule(schedule(
            r#"{"scheduler": "StepLR", "params": {"step_size": 1, "gamma": 0.5}}"#,
        ));
    let mut t = trainer(config, 8, vec![Box::new(logged.clone())]);
    t.fit().unwrap();
    assert_eq!(*logged.0.lock().unwrap(), vec![0.1, 0.05, 0.025, 0.0125]);
}

#[test]
fn per_epoch_interval_steps_at_epoch_ends() {
    let seen = LrSeen::default();
    let config = TrainerConfig::new(0.1)
        .with_epochs(Some(3))
        .with_batch_size(4)
        .with_schedule_interval(ScheduleInterval::Epoch)
        .with_lr_schedule(schedule(
            r#"{"scheduler": "StepLR", "params": {"step_size": 1, "gamma": 0.5}}"#,
        ));
    let mut t = trainer(config, 8, vec![Box::new(seen.clone())]);
    t.fit().unwrap();
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    );
    assert_eq!(t.state().schedule, Some(serde_json::json!({"step": 3})));
}

#[test]
fn plateau_schedules_see_the_validation_loss() {
    // With an lr this small the validation loss never improves after the first validation.
    let config = TrainerConfig::new(1e-12)
        .with_epochs(Some(4))
        .with_batch_size(4)
        .with_lr_schedule(schedule(
            r#"{"scheduler": "ReduceLROnPlateau", "params": {"patience": 0, "factor": 0.5, "eps": 0.0}}"#,
        ));
    let mut t = trainer(config, 8, vec![]);
    t.fit().unwrap();
    let lrs: Vec<f64> = t.state().history.iter().map(|e| e.learning_rate).collect();
    // Epoch 1 sets the best; each later validation is a bad one over patience 0: halved each time
    // (eps 0: the default 1e-8 would skip reductions this small, as PyTorch does).
    assert_eq!(lrs, vec![1e-12, 5e-13, 2.5e-13, 1.25e-13]);
}

#[test]
fn a_bad_schedule_in_the_config_is_a_config_error() {
    let config = TrainerConfig::new(0.1).with_lr_schedule(schedule(
        r#"{"scheduler": "StepLR", "params": {"step_size": 0}}"#,
    ));
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("StepLR") && err.contains("step_size") && err.contains('0'),
        "{err}"
    );
}
