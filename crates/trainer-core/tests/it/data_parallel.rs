//! Data parallelism: replicas on threads (ndarray) average their gradients each optimizer step
//! and stay bit-identical; two replicas train like one device with the global batch (within a
//! stated tolerance), two runs and a resumed run are bit-identical, and a replica that fails or
//! hangs fails the run with its name, in bounded time.

use crate::common;

use std::time::{Duration, Instant};

use burn::data::dataset::InMemDataset;
use burn::nn::{DropoutConfig, LinearConfig};
use burn::optim::AdamConfig;
use common::dropout_net::{parameter_bits, DropoutNet, LossLog, NetTrainer, StopAt};
use common::{items, RowBatcher, B};
use trainer_core::callback::Checkpointing;
use trainer_core::prelude::*;

/// 96 items: one device with batches of 16 and two replicas with batches of 8 see the same
/// items at every step (6 steps an epoch).
const ITEMS: usize = 96;

fn config(batch_size: usize, replicas: usize) -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(3))
        .with_batch_size(batch_size)
        .with_seed(5)
        .with_log_every(1)
        .with_replicas(replicas)
        .with_validation(Some(Frequency::Epochs(1)))
}

fn trainer(config: TrainerConfig, dropout: f64, callbacks: Vec<Box<dyn Callback>>) -> NetTrainer {
    trainer_on(ITEMS, config, dropout, callbacks)
}

fn trainer_on(
    train_items: usize,
    config: TrainerConfig,
    dropout: f64,
    callbacks: Vec<Box<dyn Callback>>,
) -> NetTrainer {
    let device = Default::default();
    let mut net = DropoutNet::<B>::new(16, 0.0, &device);
    net.dropout = DropoutConfig::new(dropout).init();
    let mut builder = SupervisedTrainer::builder(net, AdamConfig::new().init(), config, device)
        .train_data(InMemDataset::new(items(train_items)), RowBatcher)
        .valid_data(InMemDataset::new(items(20)), RowBatcher)
        .verify_replicas(true);
    for callback in callbacks {
        builder = builder.boxed_callback(callback);
    }
    builder.build().unwrap()
}

struct Run {
    bits: Vec<u32>,
    losses: Vec<(usize, u64)>,
    state: TrainingState,
}

fn run(config: TrainerConfig, dropout: f64) -> Run {
    run_on(ITEMS, config, dropout)
}

fn run_on(train_items: usize, config: TrainerConfig, dropout: f64) -> Run {
    let log = LossLog::default();
    let mut t = trainer_on(train_items, config, dropout, vec![Box::new(log.clone())]);
    t.fit().unwrap();
    Run {
        bits: parameter_bits(t.model()),
        losses: log.losses(),
        state: t.state().clone(),
    }
}

fn relative_gap(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn two_replicas_train_like_one_device_with_the_global_batch() {
    // No dropout: the replicas' random streams differ from one device's by design.
    let one = run(config(16, 1), 0.0);
    let two = run(config(8, 2), 0.0);
    assert_eq!(two.state.global_step, 18);
    assert_close(&one, &two);
}

#[test]
fn a_short_batch_weighs_by_its_items() {
    // 92 items: the last round of each epoch deals batches of 8 and 4 to the two replicas, and
    // one device takes the same 12 items in one batch. Weighted by items, the average is that
    // batch's mean-loss gradient; a plain mean of the two means would not be.
    let one = run_on(92, config(16, 1), 0.0);
    let two = run_on(92, config(8, 2), 0.0);
    assert_eq!(two.state.global_step, 18);
    assert_close(&one, &two);
}

#[test]
fn three_replicas_train_like_one_device_within_the_stated_tolerance() {
    // With more than two peers burn-collective's tree adds in arrival order, so runs agree to
    // float rounding rather than bit for bit (docs/guide.md, "Data parallel"): the tolerance the
    // guide states, 1e-5, against one device with the global batch and between two runs. The
    // replicas still agree bit for bit after every step (`verify_replicas`).
    let one = run(config(24, 1), 0.0);
    let three = run(config(8, 3), 0.0);
    assert_eq!(three.state.global_step, 12);
    assert_close(&one, &three);
    let again = run(config(8, 3), 0.0);
    assert_close(&three, &again);
}

/// One device with batch 16 against two replicas with batch 8, on the same items: per-step
/// losses and final weights within 1e-5.
fn assert_close(one: &Run, two: &Run) {
    assert_eq!(one.state.global_step, two.state.global_step);
    assert_eq!(two.state.samples_seen, one.state.samples_seen);
    assert_eq!(one.losses.len(), two.losses.len());
    // The same items, the gradient of their mean loss: equal up to the order of float
    // additions (a mean of two means of 8 against one mean of 16).
    for ((step, a), (_, b)) in one.losses.iter().zip(&two.losses) {
        let (a, b) = (f64::from_bits(*a), f64::from_bits(*b));
        assert!(relative_gap(a, b) < 1e-5, "step {step}: loss {a} vs {b}");
    }
    let worst = one
        .bits
        .iter()
        .zip(&two.bits)
        .map(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "weights differ by up to {worst}");
    assert_ne!(one.bits, vec![0; one.bits.len()]);
}

#[test]
fn two_replica_runs_are_bit_identical_and_replicas_agree_every_step() {
    // With dropout: each replica draws its own stream from (seed, epoch, batch), and
    // `verify_replicas` checks every replica's weights against rank 0's after every step.
    let first = run(config(8, 2), 0.3);
    let second = run(config(8, 2), 0.3);
    assert_eq!(first.bits, second.bits);
    assert_eq!(first.losses, second.losses);
    assert_eq!(first.losses.len(), 18);
    let one_device = run(config(16, 1), 0.3);
    assert_ne!(
        first.bits, one_device.bits,
        "replicas draw streams of their own"
    );
}

#[test]
fn a_resumed_two_replica_run_ends_bit_identical() {
    let dir = std::env::temp_dir().join(format!("trainer-dp-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let straight = run(config(8, 2), 0.3);

    let log = LossLog::default();
    let mut first = trainer(
        config(8, 2),
        0.3,
        vec![
            Box::new(log.clone()),
            Box::new(Checkpointing::new(&dir).every_n_steps(4)),
            Box::new(StopAt(10)),
        ],
    );
    first.fit().unwrap();
    assert_eq!(first.state().global_step, 10);
    drop(first);

    let mut second = trainer(config(8, 2), 0.3, vec![Box::new(log.clone())]);
    let from = second.resume_from(&dir).unwrap();
    // The stop's own checkpoint, mid-epoch (batch 4 of 6 of epoch 1).
    assert_eq!(
        second.state().global_step,
        10,
        "resumed from {}",
        from.display()
    );
    assert_eq!(second.state().batch_in_epoch, 4);
    second.fit().unwrap();
    assert_eq!(parameter_bits(second.model()), straight.bits);
    // Steps 1-10 from the first leg, 11-18 from the resumed one.
    assert_eq!(log.losses(), straight.losses);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_reaches_every_replica_at_the_same_step() {
    let mut t = trainer(config(8, 2), 0.3, vec![Box::new(StopAt(5))]);
    let report = t.fit().unwrap();
    assert_eq!(report.steps, 5);
    // The replicas ended in order (they left the collective): the next run starts cleanly and
    // continues from step 5 on every replica (`verify_replicas` checks every step).
    let report = t.fit().unwrap();
    assert_eq!(report.steps, 18);
}

#[test]
fn a_resume_with_another_replica_count_is_refused() {
    let dir = std::env::temp_dir().join(format!("trainer-dp-count-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut t = trainer(
        config(8, 2),
        0.0,
        vec![
            Box::new(Checkpointing::new(&dir).every_n_steps(2)),
            Box::new(StopAt(2)),
        ],
    );
    t.fit().unwrap();
    let mut other = trainer(config(8, 1), 0.0, vec![]);
    let error = other.resume_from(&dir).unwrap_err().to_string();
    assert!(error.contains("replicas"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replicas_of_a_model_with_lazily_initialised_weights_start_equal() {
    // burn's layers draw their weights when first read, and a clone read later draws its own:
    // the replicas must start from the weights rank 0 holds (`verify_replicas` checks every
    // step).
    let device = Default::default();
    let mut net = DropoutNet::<B>::new(16, 0.0, &device);
    net.hidden = LinearConfig::new(2, 16).init(&device);
    net.out = LinearConfig::new(16, 1).init(&device);
    let mut t = SupervisedTrainer::builder(
        net,
        AdamConfig::new().init(),
        config(8, 2).with_epochs(Some(1)),
        device,
    )
    .train_data(InMemDataset::new(items(ITEMS)), RowBatcher)
    .verify_replicas(true)
    .build()
    .unwrap();
    t.fit().unwrap();
}

#[test]
fn too_few_batches_for_the_replicas_is_an_error() {
    let device = Default::default();
    let mut t = SupervisedTrainer::builder(
        DropoutNet::<B>::new(4, 0.0, &device),
        AdamConfig::new().init(),
        config(8, 3).with_validation(None),
        device,
    )
    .train_data(InMemDataset::new(items(16)), RowBatcher)
    .build()
    .unwrap();
    let error = t.fit().unwrap_err().to_string();
    assert!(error.contains("for each of 3 replicas"), "{error}");
}

/// How a replica other than rank 0 misbehaves at its third batch (or, `RecordEval`, does not
/// misbehave but records the threads that evaluate).
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Panic,
    Hang,
    RecordEval,
}

/// The threads that ran a `RecordingNet`'s validation step (only one test uses that net).
static EVALUATED_ON: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn evaluated(fault: Fault) {
    if fault == Fault::RecordEval {
        let name = std::thread::current().name().unwrap_or("").to_string();
        EVALUATED_ON.lock().unwrap().push(name);
    }
}

thread_local! {
    static BATCHES_ON_THIS_THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Misbehaves on replica 1's thread only (each replica trains on a thread of its own).
fn misbehave(fault: Fault) {
    if std::thread::current().name() != Some("trainer-replica-1") {
        return;
    }
    let seen = BATCHES_ON_THIS_THREAD.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    if seen == 3 {
        match fault {
            Fault::Panic => panic!("replica 1's step broke"),
            Fault::Hang => std::thread::sleep(Duration::from_secs(3)),
            Fault::RecordEval => {}
        }
    }
}

macro_rules! faulty_net {
    ($name:ident, $fault:expr) => {
        #[derive(burn::module::Module, Debug)]
        struct $name<B: burn::tensor::backend::Backend> {
            net: DropoutNet<B>,
        }

        impl<B: burn::tensor::backend::AutodiffBackend> TrainStep<B, common::Batch<B>>
            for $name<B>
        {
            fn step(&self, batch: common::Batch<B>) -> StepOutput<B> {
                misbehave($fault);
                TrainStep::step(&self.net, batch)
            }
        }

        impl<B: burn::tensor::backend::Backend> ValidStep<B, common::Batch<B>> for $name<B> {
            fn step(&self, batch: common::Batch<B>) -> StepOutput<B> {
                evaluated($fault);
                ValidStep::step(&self.net, batch)
            }
        }
    };
}

faulty_net!(PanickingNet, Fault::Panic);
faulty_net!(HangingNet, Fault::Hang);
faulty_net!(RecordingNet, Fault::RecordEval);

#[test]
fn a_replica_that_panics_fails_the_run_by_name() {
    let device = Default::default();
    let net = PanickingNet {
        net: DropoutNet::<B>::new(16, 0.0, &device),
    };
    let mut t = SupervisedTrainer::builder(net, AdamConfig::new().init(), config(8, 2), device)
        .train_data(InMemDataset::new(items(ITEMS)), RowBatcher)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = t.fit().unwrap_err();
    assert!(
        matches!(
            error,
            TrainerError::Replica {
                rank: 1,
                replicas: 2,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("replica 1's step broke"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Two steps were taken before the third batch broke; the run stands where it stopped.
    assert_eq!(t.state().global_step, 2);
}

#[test]
fn a_replica_that_hangs_fails_the_run_after_the_timeout() {
    let device = Default::default();
    let net = HangingNet {
        net: DropoutNet::<B>::new(16, 0.0, &device),
    };
    let mut t = SupervisedTrainer::builder(net, AdamConfig::new().init(), config(8, 2), device)
        .train_data(InMemDataset::new(items(ITEMS)), RowBatcher)
        .collective_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = t.fit().unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(error, TrainerError::Replica { rank: 0, .. }),
        "{error}"
    );
    // Rank 0 waits either in the all-reduce or for the backend RNG the stuck replica holds.
    let message = error.to_string();
    assert!(
        message.contains("did not answer") || message.contains("random stream"),
        "{message}"
    );
    // The timeout, plus at most the grace the failed run gives the hung thread (5 s).
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
}

#[test]
fn validation_is_split_across_replicas_and_covers_every_item() {
    // 20 validation items in batches of 8: rank 0 takes batches 0 and 2 (8 + 4 items), rank 1
    // batch 1 (8 items). After `fit` the replicas are gone and `validate` runs on rank 0 over
    // the whole split: the same items and weights, summed in another grouping.
    let device = Default::default();
    let net = RecordingNet {
        net: DropoutNet::<B>::new(16, 0.0, &device),
    };
    let mut t = SupervisedTrainer::builder(net, AdamConfig::new().init(), config(8, 2), device)
        .train_data(InMemDataset::new(items(ITEMS)), RowBatcher)
        .valid_data(InMemDataset::new(items(20)), RowBatcher)
        .build()
        .unwrap();
    t.fit().unwrap();
    let during_fit = std::mem::take(&mut *EVALUATED_ON.lock().unwrap());
    // Three validations, each: two batches on rank 0 (this thread), one on replica 1.
    let on_replica = during_fit
        .iter()
        .filter(|n| *n == "trainer-replica-1")
        .count();
    assert_eq!((during_fit.len(), on_replica), (9, 3), "{during_fit:?}");
    let split = t.latest_metrics().valid().unwrap()["loss"];
    let alone = t.validate().unwrap()["loss"];
    assert!(
        relative_gap(split, alone) < 1e-6,
        "split validation loss {split} vs {alone} on rank 0 alone"
    );
}
