//! `EarlyStopping` on given metric sequences, every option; restore best weights and resume in
//! real runs; `TerminateOnNonFinite`.

use crate::common;

use common::dropout_net::{net_trainer, parameter_bits};
use trainer_core::callback::{
    AvailableMetrics, Callback, Checkpointing, Context, Control, EarlyStopping, LatestMetrics,
    TerminateOnNonFinite,
};
use trainer_core::metric::{Monitor, Split};
use trainer_core::prelude::*;
use trainer_core::StopReason;

fn available() -> AvailableMetrics {
    let mut available = AvailableMetrics::default();
    available.set(Split::Train, ["loss", "accuracy", "lr"]);
    available.set(Split::Valid, ["loss", "accuracy"]);
    available
}

/// Feeds `values` of valid/`metric` as validations at epochs 1, 2, ...; returns the index of the
/// validation that stopped the run, and its reason.
fn feed(early: &mut EarlyStopping, metric: &str, values: &[f64]) -> Option<(usize, String)> {
    let available = available();
    let mut state = TrainingState::default();
    let mut control = Control::default();
    let metrics = LatestMetrics::default();
    early
        .on_train_begin(&mut Context {
            state: &state,
            metrics: &metrics,
            learning_rate: 0.1,
            control: &mut control,
            available: &available,
            config: &TrainerConfig::new(0.1),
            batches_per_epoch: None,
        })
        .unwrap();
    for (i, value) in values.iter().enumerate() {
        state.epoch = i + 1;
        state.global_step = 10 * (i + 1);
        let mut metrics = LatestMetrics::default();
        metrics.set(
            Split::Valid,
            state.global_step,
            [(metric.to_string(), *value)].into(),
        );
        let mut ctx = Context {
            state: &state,
            metrics: &metrics,
            learning_rate: 0.1,
            control: &mut control,
            available: &available,
            config: &TrainerConfig::new(0.1),
            batches_per_epoch: None,
        };
        early.on_validation_end(&mut ctx).unwrap();
        if let Some(reason) = control.stop_requested() {
            return Some((i, reason.to_string()));
        }
    }
    None
}

/// Feeds `values` as in [`feed`] and returns, per validation, whether the callback asked the
/// trainer to keep the current weights.
fn keeps(early: &mut EarlyStopping, values: &[f64]) -> Vec<bool> {
    let available = available();
    let config = TrainerConfig::new(0.1);
    let mut state = TrainingState::default();
    let mut control = Control::default();
    let mut kept = Vec::new();
    for (i, value) in values.iter().enumerate() {
        state.epoch = i + 1;
        state.global_step = 10 * (i + 1);
        let mut metrics = LatestMetrics::default();
        metrics.set(
            Split::Valid,
            state.global_step,
            [("loss".to_string(), *value)].into(),
        );
        let mut ctx = Context {
            state: &state,
            metrics: &metrics,
            learning_rate: 0.1,
            control: &mut control,
            available: &available,
            config: &config,
            batches_per_epoch: None,
        };
        early.on_validation_end(&mut ctx).unwrap();
        kept.push(control.take_keep_weights());
    }
    kept
}

fn loss() -> EarlyStopping {
    EarlyStopping::new(Monitor::min(Split::Valid, "loss"))
}

fn stop_index(early: EarlyStopping, values: &[f64]) -> Option<usize> {
    let mut early = early;
    feed(&mut early, "loss", values).map(|(i, _)| i)
}

#[test]
fn patience_counts_checks_without_improvement() {
    assert_eq!(stop_index(loss().patience(0), &[1.0, 1.1, 0.5]), Some(1));
    assert_eq!(
        stop_index(loss().patience(2), &[1.0, 0.9, 0.95, 0.96, 0.1]),
        Some(3)
    );
    assert_eq!(
        stop_index(loss().patience(2), &[1.0, 0.9, 0.95, 0.8, 0.85, 0.86]),
        Some(5)
    );
    assert_eq!(stop_index(loss().patience(2), &[1.0, 0.9, 0.8, 0.7]), None);
    // A tie is no improvement.
    assert_eq!(stop_index(loss().patience(1), &[1.0, 1.0]), Some(1));
    let mut early = loss().patience(3);
    let (i, reason) = feed(&mut early, "loss", &[0.5, 0.6, 0.7, 0.8]).unwrap();
    assert_eq!(i, 3);
    assert!(
        reason.contains("valid/loss did not improve for 3 checks (patience 3, best 0.5)"),
        "{reason}"
    );
    assert_eq!(early.best().map(|b| (b.value, b.step)), Some((0.5, 10)));
    assert_eq!(early.stopped(), Some(reason.as_str()));
}

#[test]
fn min_delta_is_the_margin_an_improvement_needs() {
    // Each value beats the last by 0.05, less than min_delta 0.1.
    assert_eq!(
        stop_index(loss().patience(2).min_delta(0.1), &[1.0, 0.95, 0.9, 0.85]),
        Some(2)
    );
    assert_eq!(
        stop_index(loss().patience(2).min_delta(0.01), &[1.0, 0.95, 0.9, 0.85]),
        None
    );
    let accuracy = EarlyStopping::new(Monitor::max(Split::Valid, "accuracy"))
        .patience(1)
        .min_delta(0.02);
    let mut accuracy = accuracy;
    assert_eq!(
        feed(&mut accuracy, "accuracy", &[0.5, 0.55, 0.56]).map(|(i, _)| i),
        Some(2)
    );
}

#[test]
fn a_baseline_resets_the_wait_only_when_beaten_keras_traces() {
    // Keras 3, by hand: an improvement returns before the stop check, and resets the wait only
    // if it beats the baseline too. min, patience 3, baseline 0.5:
    //   e0 0.9 wait 1, best 0.9 (baseline missed: wait stays) | e1 0.8 wait 2, best 0.8
    //   e2 0.85 wait 3, no improvement, 3 >= 3: stop in epoch 2.
    assert_eq!(
        stop_index(loss().patience(3).baseline(0.5), &[0.9, 0.8, 0.85, 0.9]),
        Some(2)
    );
    // Improving every epoch never stops, baseline or not (Keras returns on an improvement).
    assert_eq!(
        stop_index(
            loss().patience(3).baseline(0.5),
            &[0.9, 0.8, 0.7, 0.6, 0.55]
        ),
        None
    );
    // Beating it resets the wait: e1 0.4 beats both (wait 0), e2 wait 1, e3 0.3 (wait 0), e4 1.
    assert_eq!(
        stop_index(
            loss().patience(2).baseline(0.5),
            &[0.9, 0.4, 0.45, 0.3, 0.35]
        ),
        None
    );
    // max, patience 2, baseline 0.9: e0 0.5 wait 1 (best) | e1 0.6 wait 2 (best, missed)
    //   | e2 0.55 wait 3 >= 2: stop in epoch 2.
    let mut accuracy = EarlyStopping::new(Monitor::max(Split::Valid, "accuracy"))
        .patience(2)
        .baseline(0.9);
    assert_eq!(
        feed(&mut accuracy, "accuracy", &[0.5, 0.6, 0.55]).map(|(i, _)| i),
        Some(2)
    );
    assert_eq!(
        accuracy.best().map(|b| b.value),
        Some(0.6),
        "the best is tracked past a missed baseline"
    );
    // max, patience 1, baseline 0.7: e0 0.8 beats it (wait 0) | e1 0.75 wait 1 >= 1: stop.
    let mut accuracy = EarlyStopping::new(Monitor::max(Split::Valid, "accuracy"))
        .patience(1)
        .baseline(0.7);
    assert_eq!(
        feed(&mut accuracy, "accuracy", &[0.8, 0.75]).map(|(i, _)| i),
        Some(1)
    );
}

#[test]
fn restore_best_weights_keeps_the_best_epoch_even_below_the_baseline() {
    // Keep requests: the first checked epoch, then each improvement; a missed baseline changes
    // nothing about them.
    let mut early = loss().patience(2).baseline(0.1).restore_best_weights(true);
    let kept = keeps(&mut early, &[0.9, 0.8, 0.85, 0.95]);
    assert_eq!(kept, [true, true, false, false]);
    assert_eq!(early.best().map(|b| b.value), Some(0.8));
}

#[test]
fn non_finite_values_stop_when_checked() {
    let mut early = loss().patience(5);
    let (i, reason) = feed(&mut early, "loss", &[1.0, f64::NAN]).unwrap();
    assert_eq!(i, 1);
    assert!(
        reason.contains("valid/loss = NaN is not finite"),
        "{reason}"
    );
    assert_eq!(
        stop_index(loss().patience(5), &[1.0, f64::INFINITY]),
        Some(1)
    );
    // Unchecked, NaN is just no improvement.
    assert_eq!(
        stop_index(
            loss().patience(2).check_finite(false),
            &[1.0, f64::NAN, 0.9, f64::NAN, f64::NAN]
        ),
        Some(4)
    );
}

#[test]
fn thresholds_stop_at_once() {
    let mut early = loss().patience(10).stopping_threshold(0.5);
    let (i, reason) = feed(&mut early, "loss", &[1.0, 0.6, 0.4, 0.3]).unwrap();
    assert_eq!(i, 2);
    assert!(reason.contains("stopping threshold 0.5"), "{reason}");
    let mut early = loss().patience(10).divergence_threshold(10.0);
    let (i, reason) = feed(&mut early, "loss", &[1.0, 5.0, 20.0]).unwrap();
    assert_eq!(i, 2);
    assert!(reason.contains("divergence threshold 10"), "{reason}");
    let mut accuracy = EarlyStopping::new(Monitor::max(Split::Valid, "accuracy"))
        .stopping_threshold(0.9)
        .divergence_threshold(0.1);
    assert_eq!(
        feed(&mut accuracy, "accuracy", &[0.5, 0.95]).map(|(i, _)| i),
        Some(1)
    );
    let mut accuracy = EarlyStopping::new(Monitor::max(Split::Valid, "accuracy"))
        .stopping_threshold(0.9)
        .divergence_threshold(0.1);
    assert_eq!(
        feed(&mut accuracy, "accuracy", &[0.5, 0.05]).map(|(i, _)| i),
        Some(1)
    );
}

#[test]
fn start_from_epoch_and_check_every_skip_checks() {
    // Keras counts epochs from 0 and skips `epoch < start_from_epoch`: with 3, epochs 0, 1, 2
    // are not checked; epoch 3 is the first check (the best), epoch 4 the second (no
    // improvement, wait 1 >= 0: stop in epoch 4).
    assert_eq!(
        stop_index(
            loss().patience(0).start_from_epoch(3),
            &[1.0, 2.0, 3.0, 4.0, 5.0]
        ),
        Some(4)
    );
    assert_eq!(
        stop_index(
            loss().patience(0).start_from_epoch(3),
            &[1.0, 2.0, 3.0, 4.0]
        ),
        None
    );
    // max mode, start 1, patience 1: e0 skipped; e1 0.5 best; e2 0.4 wait 1 >= 1: stop.
    let mut accuracy = EarlyStopping::new(Monitor::max(Split::Valid, "accuracy"))
        .patience(1)
        .start_from_epoch(1);
    assert_eq!(
        feed(&mut accuracy, "accuracy", &[0.9, 0.5, 0.4]).map(|(i, _)| i),
        Some(2)
    );
    // Every second validation: 0.9 (2nd) is the first check, 5.0 (4th) the second.
    assert_eq!(
        stop_index(loss().patience(0).check_every(2), &[1.0, 0.9, 0.1, 5.0]),
        Some(3)
    );
}

#[test]
fn a_monitored_metric_that_does_not_exist_is_an_error_at_train_begin() {
    let available = available();
    let state = TrainingState::default();
    let metrics = LatestMetrics::default();
    let mut control = Control::default();
    let mut ctx = Context {
        state: &state,
        metrics: &metrics,
        learning_rate: 0.1,
        control: &mut control,
        available: &available,
        config: &TrainerConfig::new(0.1),
        batches_per_epoch: None,
    };
    let message = EarlyStopping::new(Monitor::min(Split::Valid, "los"))
        .on_train_begin(&mut ctx)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("valid/los") && message.contains("loss, accuracy"),
        "{message}"
    );
    let message = EarlyStopping::new(Monitor::min(Split::Test, "loss"))
        .on_train_begin(&mut ctx)
        .unwrap_err()
        .to_string();
    assert!(message.contains("no such data"), "{message}");
    // In a real run without validation configured, valid metrics do not exist.
    let mut t = net_trainer(
        TrainerConfig::new(0.01)
            .with_epochs(Some(1))
            .with_batch_size(8)
            .with_validation(None),
        0.0,
        vec![Box::new(loss())],
    );
    let message = t.fit().unwrap_err().to_string();
    assert!(
        message.contains("valid/loss") && message.contains("no validation configured"),
        "{message}"
    );
}

#[test]
fn the_state_carries_the_counter_across_a_resume() {
    let values = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98];
    let straight = stop_index(loss().patience(3), &values);
    assert_eq!(straight, Some(4));
    let mut first = loss().patience(3);
    assert_eq!(feed(&mut first, "loss", &values[..3]), None);
    assert_eq!(first.wait(), 1);
    let mut resumed = loss().patience(3);
    resumed.load_state(first.state().unwrap()).unwrap();
    assert_eq!(resumed.wait(), 1);
    assert_eq!(
        feed(&mut resumed, "loss", &values[3..]).map(|(i, _)| i + 3),
        straight
    );
}

fn config(epochs: usize) -> TrainerConfig {
    TrainerConfig::new(0.05)
        .with_epochs(Some(epochs))
        .with_batch_size(8)
        .with_seed(21)
        .with_validation(Some(Frequency::Epochs(1)))
}

#[test]
fn restore_best_weights_puts_back_the_best_epochs_parameters() {
    // This net's validation loss falls every epoch; watching for its *largest* value makes an
    // early epoch the best one, which is what the restore needs to show.
    let early = EarlyStopping::new(Monitor::max(Split::Valid, "loss"))
        .patience(100)
        .restore_best_weights(true);
    let mut t = net_trainer(config(8), 0.0, vec![Box::new(early)]);
    t.fit().unwrap();
    let losses: Vec<f64> = t
        .state()
        .history
        .iter()
        .map(|h| h.valid.as_ref().unwrap()["loss"])
        .collect();
    let best_epoch =
        (0..losses.len()).fold(0, |b, i| if losses[i] > losses[b] { i } else { b }) + 1;
    assert!(
        best_epoch < 8,
        "the run must worsen after its best epoch for this test to mean something: {losses:?}"
    );
    // The same run stopped after the best epoch has the best epoch's parameters.
    let mut reference = net_trainer(config(best_epoch), 0.0, vec![]);
    reference.fit().unwrap();
    assert!(parameter_bits(t.model()) == parameter_bits(reference.model()));
}

/// Stops the run when epoch N has ended.
struct StopAfterEpoch(usize);

impl Callback for StopAfterEpoch {
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if ctx.state.epoch == self.0 {
            ctx.control.stop("interrupted");
        }
        Ok(())
    }
}

#[test]
fn a_resumed_run_stops_where_an_uninterrupted_one_does_with_the_same_weights() {
    // Validation losses fall by less than min_delta from epoch 4 on: epoch 4 is the first
    // check without improvement, epoch 5 the second, which stops the run.
    let early = || {
        Box::new(
            loss()
                .patience(2)
                .min_delta(0.05)
                .restore_best_weights(true),
        ) as Box<dyn Callback>
    };
    let mut straight = net_trainer(config(12), 0.0, vec![early()]);
    let report = straight.fit().unwrap();
    let StopReason::Requested(reason) = report.stop_reason.clone() else {
        panic!("no early stop: {report:?}")
    };
    assert!(reason.starts_with("early stopping"));

    let dir = std::env::temp_dir().join(format!("trainer-early-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Interrupted after epoch 4 (13 steps per epoch), mid-way through the patience.
    let mut first = net_trainer(
        config(12),
        0.0,
        vec![
            early(),
            Box::new(Checkpointing::new(&dir).every_n_epochs(1)),
            Box::new(StopAfterEpoch(4)),
        ],
    );
    first.fit().unwrap();
    let mut resumed = net_trainer(config(12), 5.0, vec![early()]);
    resumed
        .resume_from(dir.join("epoch-0004-step-000052.ckpt"))
        .unwrap();
    let resumed_report = resumed.fit().unwrap();
    assert_eq!(resumed_report.stop_reason, report.stop_reason);
    assert_eq!(resumed_report.epochs, report.epochs);
    assert!(parameter_bits(resumed.model()) == parameter_bits(straight.model()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn terminate_on_non_finite_names_the_step() {
    let available = available();
    let mut callback = TerminateOnNonFinite::new();
    let mut control = Control::default();
    let mut state = TrainingState::default();
    for (step, loss) in [(1, 0.5), (2, 0.4), (3, f64::NAN)] {
        state.global_step = step;
        let mut metrics = LatestMetrics::default();
        metrics.set(Split::Train, step, [("loss".to_string(), loss)].into());
        callback
            .on_batch_end(&mut Context {
                state: &state,
                metrics: &metrics,
                learning_rate: 0.1,
                control: &mut control,
                available: &available,
                config: &TrainerConfig::new(0.1),
                batches_per_epoch: None,
            })
            .unwrap();
    }
    assert_eq!(
        control.stop_requested(),
        Some("non-finite training loss NaN at step 3")
    );
    // In a real run: SGD with a learning rate that blows the loss up.
    let mut t = common::trainer(
        TrainerConfig::new(1e30)
            .with_epochs(Some(3))
            .with_batch_size(4)
            .with_log_every(1),
        40,
        vec![Box::new(TerminateOnNonFinite::new())],
    );
    let report = t.fit().unwrap();
    let StopReason::Requested(reason) = report.stop_reason else {
        panic!("not stopped")
    };
    assert!(
        reason.starts_with("non-finite training loss")
            && reason.contains(&format!("at step {}", report.steps)),
        "{reason}"
    );
}

#[test]
fn a_state_written_by_format_1_1_still_loads() {
    // Formats 1.0 and 1.1 stored the best value as a number with `best_step` beside it.
    let mut early = loss().patience(3);
    let old = serde_json::json!({"best": 0.25, "best_step": 40, "wait": 2, "validations": 5, "stopped": null});
    early.load_state(old).unwrap();
    assert_eq!(early.best().map(|b| (b.value, b.step)), Some((0.25, 40)));
    assert_eq!(early.wait(), 2);
    // And the state it writes now loads back.
    let now = early.state().unwrap();
    assert_eq!(now["best"]["value"], 0.25);
    let mut again = loss().patience(3);
    again.load_state(now).unwrap();
    assert_eq!(again.best(), early.best());
}

/// Runs `early` over `values` as epoch-end validations; the epoch it stopped in, and the last
/// epoch whose weights it asked to keep.
fn run_epochs(
    early: &mut EarlyStopping,
    metric: &str,
    values: &[f64],
) -> (Option<usize>, Option<usize>) {
    let available = available();
    let config = TrainerConfig::new(0.1);
    let mut state = TrainingState::default();
    let mut control = Control::default();
    let mut last_kept = None;
    for (epoch, value) in values.iter().enumerate() {
        state.epoch = epoch + 1;
        state.global_step = 10 * (epoch + 1);
        let mut metrics = LatestMetrics::default();
        metrics.set(
            Split::Valid,
            state.global_step,
            [(metric.to_string(), *value)].into(),
        );
        let mut ctx = Context {
            state: &state,
            metrics: &metrics,
            learning_rate: 0.1,
            control: &mut control,
            available: &available,
            config: &config,
            batches_per_epoch: None,
        };
        early.on_validation_end(&mut ctx).unwrap();
        if control.take_keep_weights() {
            last_kept = Some(epoch);
        }
        if control.stop_requested().is_some() {
            return (Some(epoch), last_kept);
        }
    }
    (None, last_kept)
}

#[test]
fn three_hundred_random_sequences_end_as_keras_ends_them() {
    // Keras 3.15.1's own EarlyStopping over random sequences (fixtures/early_stopping_keras.py):
    // the epoch it stops in, the best value, the epoch whose weights it restores. NaN values
    // included, so Lightning's `check_finite` is off here (Keras has none).
    let file: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/early_stopping_keras.json")).unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 300);
    for case in cases {
        let (metric, monitor) = match case["mode"].as_str().unwrap() {
            "min" => ("loss", Monitor::min(Split::Valid, "loss")),
            _ => ("accuracy", Monitor::max(Split::Valid, "accuracy")),
        };
        let mut early = EarlyStopping::new(monitor)
            .patience(case["patience"].as_u64().unwrap() as usize)
            .min_delta(case["min_delta"].as_f64().unwrap())
            .start_from_epoch(case["start_from_epoch"].as_u64().unwrap() as usize)
            .restore_best_weights(case["restore_best_weights"].as_bool().unwrap())
            .check_finite(false);
        if let Some(baseline) = case["baseline"].as_f64() {
            early = early.baseline(baseline);
        }
        let values: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        let (stopped, kept) = run_epochs(&mut early, metric, &values);
        assert_eq!(
            stopped,
            case["stopped_epoch"].as_u64().map(|e| e as usize),
            "stop: {case}"
        );
        let best = early.best().map(|b| b.value).filter(|v| !v.is_nan());
        assert_eq!(best, case["best"].as_f64(), "best: {case}");
        assert_eq!(
            kept,
            case["restored_epoch"].as_u64().map(|e| e as usize),
            "restored weights: {case}"
        );
    }
}
