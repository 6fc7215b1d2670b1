use crate::common;

use common::*;
use trainer_core::callback::{Callback, Context, Hook};
use trainer_core::prelude::*;
use trainer_core::{GradientClipping, StopReason};

#[test]
fn hooks_run_in_lifecycle_order() {
    let recorder = Recorder::default();
    // 8 items, batch 4: two batches per epoch.
    let config = TrainerConfig::new(0.05)
        .with_epochs(Some(2))
        .with_batch_size(4)
        .with_validation(Some(Frequency::Epochs(1)));
    let mut trainer = trainer(config, 8, vec![Box::new(recorder.clone())]);
    trainer.fit().unwrap();
    trainer.test().unwrap();

    use Hook::*;
    let epoch = [
        EpochBegin,
        BatchBegin,
        BatchEnd,
        BatchBegin,
        BatchEnd,
        ValidationBegin,
        ValidationEnd,
        EpochEnd,
    ];
    let mut expected = vec![TrainBegin];
    expected.extend(epoch);
    expected.extend(epoch);
    expected.extend([TrainEnd, TestBegin, TestEnd]);
    assert_eq!(recorder.hooks(), expected);

    // The steps seen at each hook: batch_end comes after its optimizer step.
    let steps: Vec<usize> = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(
        steps,
        vec![0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4]
    );
}

struct StopAtStep(usize);

impl Callback for StopAtStep {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if ctx.state.global_step == self.0 {
            ctx.control.stop(format!("enough at step {}", self.0));
        }
        Ok(())
    }
}

#[test]
fn a_callback_stop_ends_training_there_with_its_reason() {
    let recorder = Recorder::default();
    let config = TrainerConfig::new(0.05)
        .with_epochs(Some(5))
        .with_batch_size(2);
    let mut trainer = trainer(
        config,
        10,
        vec![Box::new(StopAtStep(7)), Box::new(recorder.clone())],
    );
    let report = trainer.fit().unwrap();
    assert_eq!(report.steps, 7);
    assert_eq!(trainer.state().global_step, 7);
    // Step 7 is the second batch of the second epoch (5 batches each).
    assert_eq!(trainer.state().epoch, 1);
    assert_eq!(trainer.state().batch_in_epoch, 2);
    let reason = StopReason::Requested("enough at step 7".into());
    assert_eq!(trainer.state().stop_reason.as_ref(), Some(&reason));
    assert_eq!(report.stop_reason, reason);
    // No batch ran after the stop; on_train_end still did.
    let hooks = recorder.hooks();
    assert_eq!(hooks.last(), Some(&Hook::TrainEnd));
    // The stop takes effect after the hook round: every callback saw the 7th batch_end.
    assert_eq!(hooks.iter().filter(|h| **h == Hook::BatchEnd).count(), 7);
    assert_eq!(hooks.iter().filter(|h| **h == Hook::BatchBegin).count(), 7);
}

#[test]
fn max_steps_stops_mid_epoch() {
    let config = TrainerConfig::new(0.05)
        .with_epochs(None)
        .with_max_steps(Some(5))
        .with_batch_size(4);
    let mut trainer = trainer(config, 12, vec![]);
    let report = trainer.fit().unwrap();
    assert_eq!(report.stop_reason, StopReason::MaxStepsReached);
    assert_eq!(trainer.state().global_step, 5);
    assert_eq!(trainer.state().epoch, 1);
    assert_eq!(trainer.state().batch_in_epoch, 2);
    assert_eq!(trainer.state().samples_seen, 20);
}

#[test]
fn training_lowers_the_loss_and_fills_history() {
    let config = TrainerConfig::new(0.1)
        .with_epochs(Some(20))
        .with_batch_size(8);
    let mut trainer = trainer(config, 64, vec![]);
    let report = trainer.fit().unwrap();
    let history = &trainer.state().history;
    assert_eq!(history.len(), 20);
    let first = history[0].train["loss"];
    let last = history[19].train["loss"];
    assert!(last < first * 0.1, "loss {first} -> {last}");
    assert_eq!(report.stop_reason, StopReason::EpochsCompleted);
    assert!(history
        .iter()
        .all(|e| e.valid.as_ref().is_some_and(|v| v.contains_key("loss"))));
    assert_eq!(trainer.state().best.as_ref().unwrap().name, "valid/loss");
}

#[test]
fn gradient_accumulation_equals_one_larger_batch() {
    // Two batches of 4 with accumulation 2 (each loss scaled by 1/2) give the gradient of the mean
    // over 8 items: the same update as one batch of 8.
    let accumulated = TrainerConfig::new(0.1)
        .with_epochs(Some(1))
        .with_batch_size(4)
        .with_gradient_accumulation(2);
    let mut a = trainer(accumulated, 8, vec![]);
    a.fit().unwrap();
    let single = TrainerConfig::new(0.1)
        .with_epochs(Some(1))
        .with_batch_size(8);
    let mut b = trainer(single, 8, vec![]);
    b.fit().unwrap();
    assert_eq!(a.state().global_step, 1);
    assert_eq!(b.state().global_step, 1);
    for (x, y) in a.model().weights().iter().zip(b.model().weights()) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    // Without accumulation the same data makes two different steps.
    let mut c = trainer(
        TrainerConfig::new(0.1)
            .with_epochs(Some(1))
            .with_batch_size(4),
        8,
        vec![],
    );
    c.fit().unwrap();
    assert_eq!(c.state().global_step, 2);
    assert!(c
        .model()
        .weights()
        .iter()
        .zip(b.model().weights())
        .any(|(x, y)| (x - y).abs() > 1e-4));
}

#[test]
fn clipping_by_value_bounds_each_update() {
    // SGD with lr 1: an update is minus the gradient, so each weight moves by at most the clip value.
    let config = TrainerConfig::new(1.0)
        .with_max_steps(Some(1))
        .with_batch_size(8)
        .with_gradient_clipping(Some(GradientClipping::Value(0.01)));
    let mut t = trainer(config, 8, vec![]);
    let before = t.model().weights();
    t.fit().unwrap();
    let after = t.model().weights();
    for (b, a) in before.iter().zip(&after) {
        assert!((a - b).abs() <= 0.01 + 1e-7, "{b} -> {a}");
    }
    assert!(
        before
            .iter()
            .zip(&after)
            .any(|(b, a)| ((a - b).abs() - 0.01).abs() < 1e-6),
        "some gradient exceeds 0.01 and is clipped to it"
    );
}

#[test]
fn clipping_by_norm_bounds_the_global_update_norm() {
    let unclipped = TrainerConfig::new(1.0)
        .with_max_steps(Some(1))
        .with_batch_size(8);
    let mut free = trainer(unclipped.clone(), 8, vec![]);
    let before = free.model().weights();
    free.fit().unwrap();
    let free_delta: Vec<f32> = free
        .model()
        .weights()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    let free_norm = free_delta.iter().map(|d| d * d).sum::<f32>().sqrt();
    let max_norm = free_norm as f64 / 4.0;

    let mut clipped = trainer(
        unclipped.with_gradient_clipping(Some(GradientClipping::Norm(max_norm))),
        8,
        vec![],
    );
    clipped.fit().unwrap();
    let delta: Vec<f32> = clipped
        .model()
        .weights()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    let norm = delta.iter().map(|d| d * d).sum::<f32>().sqrt();
    assert!(
        (norm as f64 - max_norm).abs() < 1e-5,
        "norm {norm} vs max {max_norm}"
    );
    // Same direction: the clipped update is the free one scaled by max/free.
    let scale = norm / free_norm;
    for (d, f) in delta.iter().zip(&free_delta) {
        assert!((d - f * scale).abs() < 1e-6);
    }
}

#[test]
fn config_patience_stops_when_validation_stalls() {
    // A learning rate of ~0 never improves the validation loss after the first validation.
    let config = TrainerConfig::new(1e-12)
        .with_epochs(Some(50))
        .with_batch_size(4)
        .with_early_stopping_patience(Some(2));
    let mut t = trainer(config, 8, vec![]);
    let report = t.fit().unwrap();
    // Epoch 1 sets the best; epochs 2 and 3 do not beat it: patience 2 is used up at epoch 3.
    assert!(
        matches!(report.stop_reason, StopReason::Requested(ref r) if r.contains("early stopping")),
        "{:?}",
        report.stop_reason
    );
    assert_eq!(t.state().epoch, 3);
    assert_eq!(t.state().history.len(), 3);
    // The patience is an `EarlyStopping` callback: its state is checkpointed like any other's.
    let states = t.snapshot().unwrap().encode().unwrap();
    let summary = trainer_core::checkpoint::CheckpointSummary::from_bytes(&states, "mem").unwrap();
    assert!(
        summary.callbacks.contains(&"early_stopping".to_string()),
        "{:?}",
        summary.callbacks
    );
}

#[test]
fn config_patience_and_an_early_stopping_callback_are_one_too_many() {
    let device = Default::default();
    let config = TrainerConfig::new(0.1)
        .with_epochs(Some(1))
        .with_early_stopping_patience(Some(2));
    let built = SupervisedTrainer::builder(
        Regressor::<B>::new(&device),
        burn::optim::SgdConfig::new().init(),
        config,
        device,
    )
    .train_data(burn::data::dataset::InMemDataset::new(items(8)), RowBatcher)
    .valid_data(burn::data::dataset::InMemDataset::new(items(4)), RowBatcher)
    .callback(EarlyStopping::new(Monitor::min(Split::Valid, "loss")))
    .build()
    .map(|t: SupervisedTrainer<B, Regressor<B>, Optim, Batch<B>, Batch<Inner>>| t);
    let message = built.err().expect("refused").to_string();
    assert!(
        message.contains("early_stopping_patience") && message.contains("keep one of them"),
        "{message}"
    );
}

#[test]
fn test_without_test_data_is_a_clear_error() {
    let device = Default::default();
    let config = TrainerConfig::new(0.1);
    let mut t = SupervisedTrainer::builder(
        Regressor::<B>::new(&device),
        burn::optim::SgdConfig::new().init(),
        config,
        device,
    )
    .train_data(burn::data::dataset::InMemDataset::new(items(4)), RowBatcher)
    .build()
    .map(|t: SupervisedTrainer<B, Regressor<B>, Optim, Batch<B>, Batch<Inner>>| t)
    .unwrap();
    let err = t.test().unwrap_err().to_string();
    assert!(err.contains("test") && err.contains("test_data"), "{err}");
}

#[test]
fn duplicate_callback_keys_are_rejected() {
    struct Keyed;
    impl Callback for Keyed {
        fn key(&self) -> Option<String> {
            Some("same".into())
        }
    }
    let device = Default::default();
    let result = SupervisedTrainer::<B, Regressor<B>, Optim, Batch<B>, Batch<Inner>>::builder(
        Regressor::<B>::new(&device),
        burn::optim::SgdConfig::new().init(),
        TrainerConfig::new(0.1),
        device,
    )
    .callback(Keyed)
    .callback(Keyed)
    .build();
    let err = result.err().expect("duplicate keys must fail").to_string();
    assert!(err.contains("same") && err.contains("unique"), "{err}");
}

#[test]
fn a_failing_callback_reaches_on_exception_and_is_returned() {
    struct Fails;
    impl Callback for Fails {
        fn on_epoch_end(&mut self, _: &mut Context<'_>) -> trainer_core::Result<()> {
            Err(TrainerError::Callback {
                callback: "fails".into(),
                message: "disk full".into(),
            })
        }
    }
    #[derive(Clone, Default)]
    struct SeesError(std::sync::Arc<std::sync::Mutex<Option<String>>>);
    impl Callback for SeesError {
        fn on_exception(&mut self, _: &mut Context<'_>, error: &TrainerError) {
            *self.0.lock().unwrap() = Some(error.to_string());
        }
    }
    let seen = SeesError::default();
    let mut t = trainer(
        TrainerConfig::new(0.1).with_epochs(Some(3)),
        8,
        vec![Box::new(Fails), Box::new(seen.clone())],
    );
    let err = t.fit().unwrap_err().to_string();
    assert!(err.contains("disk full"));
    assert_eq!(seen.0.lock().unwrap().as_deref(), Some(err.as_str()));
    assert!(matches!(t.state().stop_reason, Some(StopReason::Failed(_))));
}

#[test]
fn a_callback_request_writes_a_checkpoint_file() {
    struct SaveAtStep2;
    impl Callback for SaveAtStep2 {
        fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
            if ctx.state.global_step == 2 {
                ctx.control.save_checkpoint();
            }
            Ok(())
        }
    }
    let dir = std::env::temp_dir().join(format!("trainer-core-save-now-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let recorder = Recorder::default();
    let device = Default::default();
    let mut t = SupervisedTrainer::builder(
        Regressor::<B>::new(&device),
        burn::optim::SgdConfig::new().init(),
        TrainerConfig::new(0.1)
            .with_epochs(Some(1))
            .with_batch_size(2),
        device,
    )
    .train_data(burn::data::dataset::InMemDataset::new(items(8)), RowBatcher)
    .valid_data(burn::data::dataset::InMemDataset::new(items(4)), RowBatcher)
    .callback(SaveAtStep2)
    .callback(recorder.clone())
    .checkpoint_dir(&dir)
    .build()
    .unwrap();
    t.fit().unwrap();
    let summary =
        trainer_core::checkpoint::CheckpointSummary::read(&dir.join("epoch-0000-step-000002.ckpt"))
            .unwrap();
    assert_eq!(summary.global_step, 2);
    assert!(recorder
        .seen
        .lock()
        .unwrap()
        .contains(&(Hook::Checkpoint, 2)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_save_request_inside_on_checkpoint_does_not_loop() {
    struct SaveAtStep1;
    impl Callback for SaveAtStep1 {
        fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
            if ctx.state.global_step == 1 {
                ctx.control.save_checkpoint();
            }
            Ok(())
        }
        fn on_checkpoint(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
            ctx.control.save_checkpoint();
            Ok(())
        }
    }
    let dir = std::env::temp_dir().join(format!("trainer-core-save-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let recorder = Recorder::default();
    let device = Default::default();
    let mut t = SupervisedTrainer::builder(
        Regressor::<B>::new(&device),
        burn::optim::SgdConfig::new().init(),
        TrainerConfig::new(0.1)
            .with_epochs(Some(1))
            .with_batch_size(4),
        device,
    )
    .train_data(burn::data::dataset::InMemDataset::new(items(8)), RowBatcher)
    .callback(SaveAtStep1)
    .callback(recorder.clone())
    .callback(trainer_core::callback::Checkpointing::new(&dir).save_on_end(false))
    .build()
    .unwrap();
    t.fit().unwrap();
    let checkpoints = recorder
        .hooks()
        .iter()
        .filter(|h| **h == Hook::Checkpoint)
        .count();
    assert_eq!(checkpoints, 1);
    // One checkpoint, its `latest` pointer and the index.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}
