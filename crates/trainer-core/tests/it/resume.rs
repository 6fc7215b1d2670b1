//! Exact resume: a run interrupted and resumed from its checkpoints ends with the same
//! parameters, bit for bit, and the same per-step losses as a run that never stopped. The net
//! has dropout (so the backend's random stream must repeat), Adam (optimizer state), a step
//! schedule, validation each epoch and 13 batches per epoch with a short last one.

use crate::common;

use std::path::{Path, PathBuf};

use common::dropout_net::{net_trainer, parameter_bits, LossLog, StopAt};
use trainer_core::callback::Checkpointing;
use trainer_core::prelude::*;

const EPOCHS: usize = 3;

fn config(accumulation: usize) -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(EPOCHS))
        .with_batch_size(8)
        .with_seed(11)
        .with_log_every(1)
        .with_gradient_accumulation(accumulation)
        .with_validation(Some(Frequency::Epochs(1)))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Outcome {
    bits: Vec<u32>,
    losses: Vec<(usize, u64)>,
    state: TrainingState,
}

fn straight(accumulation: usize) -> Outcome {
    let log = LossLog::default();
    let mut t = net_trainer(config(accumulation), 0.0, vec![Box::new(log.clone())]);
    t.fit().unwrap();
    Outcome {
        bits: parameter_bits(t.model()),
        losses: log.losses(),
        state: t.state().clone(),
    }
}

/// Runs one leg: from a fresh trainer (other initial weights), optionally resumed from `from`,
/// checkpointing every `every` steps into `dir`, stopped after step `stop` if given.
fn leg(
    accumulation: usize,
    from: Option<&Path>,
    dir: &Path,
    every: usize,
    stop: Option<usize>,
    log: &LossLog,
) -> NetOutcome {
    let mut callbacks: Vec<Box<dyn Callback>> = vec![
        Box::new(log.clone()),
        Box::new(Checkpointing::new(dir).every_n_steps(every)),
    ];
    if let Some(stop) = stop {
        callbacks.push(Box::new(StopAt(stop)));
    }
    // A resumed leg starts from other weights: the checkpoint must replace them.
    let salt = if from.is_some() { 7.5 } else { 0.0 };
    let mut t = net_trainer(config(accumulation), salt, callbacks);
    if let Some(from) = from {
        t.resume_from(from).unwrap();
    }
    t.fit().unwrap();
    NetOutcome {
        bits: parameter_bits(t.model()),
        state: t.state().clone(),
    }
}

struct NetOutcome {
    bits: Vec<u32>,
    state: TrainingState,
}

/// Keeps only the losses of steps up to `step` (a resumed leg redoes what came after its
/// checkpoint).
fn truncate(log: &LossLog, step: usize) {
    log.0.lock().unwrap().retain(|(s, _)| *s <= step);
}

fn assert_same(resumed: &NetOutcome, log: &LossLog, reference: &Outcome) {
    assert_eq!(log.losses(), reference.losses, "per-step losses differ");
    assert!(resumed.bits == reference.bits, "final parameters differ");
    assert_eq!(resumed.state.global_step, reference.state.global_step);
    assert_eq!(resumed.state.samples_seen, reference.state.samples_seen);
    let strip = |s: &TrainingState| {
        s.history
            .iter()
            .map(|h| {
                (
                    h.epoch,
                    h.global_step,
                    h.train.clone(),
                    h.valid.clone(),
                    h.learning_rate,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&resumed.state),
        strip(&reference.state),
        "epoch summaries differ"
    );
}

#[test]
fn resuming_at_an_epoch_boundary_is_bit_exact() {
    let reference = straight(1);
    let dir = temp_dir("boundary");
    let log = LossLog::default();
    // 13 steps per epoch: the checkpoint of step 13 is the end of epoch 1.
    leg(1, None, &dir, 13, Some(15), &log);
    let boundary = dir.join("epoch-0000-step-000013.ckpt");
    assert!(boundary.is_file());
    truncate(&log, 13);
    let resumed = leg(1, Some(&boundary), &dir, 13, None, &log);
    assert_same(&resumed, &log, &reference);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_mid_epoch_is_bit_exact() {
    let reference = straight(1);
    let dir = temp_dir("mid");
    let log = LossLog::default();
    leg(1, None, &dir, 5, Some(23), &log);
    // The end-of-training save at step 23 is the latest; resume from it (epoch 2, batch 10).
    truncate(&log, 23);
    let resumed = leg(1, Some(&dir), &dir, 5, None, &log);
    assert_same(&resumed, &log, &reference);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_twice_is_bit_exact() {
    let reference = straight(1);
    let dir = temp_dir("twice");
    let log = LossLog::default();
    leg(1, None, &dir, 4, Some(9), &log);
    // A periodic checkpoint, not the newest one: the run "crashed" after step 9.
    let first = dir.join("epoch-0000-step-000008.ckpt");
    truncate(&log, 8);
    leg(1, Some(&first), &dir, 4, Some(30), &log);
    let second = dir.join("epoch-0002-step-000028.ckpt");
    truncate(&log, 28);
    let resumed = leg(1, Some(&second), &dir, 4, None, &log);
    assert_same(&resumed, &log, &reference);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_with_gradient_accumulation_is_bit_exact() {
    // 13 micro-batches per epoch, 2 per step: 7 steps per epoch, the last of one micro-batch.
    let reference = straight(2);
    let dir = temp_dir("accumulation");
    let log = LossLog::default();
    leg(2, None, &dir, 3, Some(10), &log);
    let checkpoint = dir.join("epoch-0001-step-000009.ckpt");
    truncate(&log, 9);
    let resumed = leg(2, Some(&checkpoint), &dir, 3, None, &log);
    assert_same(&resumed, &log, &reference);
    std::fs::remove_dir_all(&dir).unwrap();
}
