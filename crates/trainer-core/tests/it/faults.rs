//! Faults inside a run: a panic in the user's step, in a callback or in a batcher ends the run
//! with an error (callbacks hear of it, an emergency checkpoint is taken where the state allows
//! it, the event log says `failed` with the panic's message); a checkpoint that cannot be written
//! is an event and is counted in the report; a panicking save counts as a failed one.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::dropout_net::{net_trainer, panic_in_step_after};
use trainer_core::callback::{Callback, Checkpointing, Context, EventLog};
use trainer_core::checkpoint::{latest_in, IndexEntry, Retention, RetentionPolicy};
use trainer_core::metric::Monitor;
use trainer_core::prelude::*;

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(2))
        .with_batch_size(8)
        .with_seed(4)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Records the errors `on_exception` hears.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

impl Callback for Heard {
    fn on_exception(&mut self, _ctx: &mut Context<'_>, error: &TrainerError) {
        self.0.lock().unwrap().push(error.to_string());
    }
}

/// Panics in `on_batch_end` at a step.
struct PanicAt(usize);

impl Callback for PanicAt {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        assert_ne!(
            ctx.state.global_step, self.0,
            "a callback panicked at step {}",
            self.0
        );
        Ok(())
    }
}

/// Runs `trainer` with checkpointing and an event log in `dir`; checks that the run failed with
/// a panic carrying `message`, that callbacks heard it, that `run_ended` says so, and that the
/// emergency checkpoint is the one at `step`.
fn check_contained(
    dir: &Path,
    mut trainer: common::dropout_net::NetTrainer,
    heard: &Heard,
    message: &str,
    step: usize,
) {
    let error = trainer.fit().expect_err("the panic became an error");
    assert!(matches!(error, TrainerError::Panicked { .. }), "{error:?}");
    assert!(error.to_string().contains(message), "{error}");
    assert_eq!(
        heard.0.lock().unwrap().len(),
        1,
        "on_exception heard it once"
    );
    let log = events(dir);
    let last = log.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["status"].as_str()),
        (Some("run_ended"), Some("failed")),
        "{last}"
    );
    assert!(last["reason"].as_str().unwrap().contains(message), "{last}");
    let latest = latest_in(&dir.join("checkpoints"))
        .unwrap()
        .expect("an emergency checkpoint");
    let mut resumed = net_trainer(config(), 0.0, vec![]);
    resumed.load_checkpoint(&latest).unwrap();
    assert_eq!(
        resumed.state().global_step,
        step,
        "the emergency checkpoint is of step {step}"
    );
    // The trainer is usable after the contained panic: it trains on from where it stood.
    let report = resumed.fit().unwrap();
    assert_eq!(report.steps, 26);
}

fn with_log(
    dir: &Path,
    heard: &Heard,
    extra: Option<Box<dyn Callback>>,
) -> common::dropout_net::NetTrainer {
    let checkpointing = Checkpointing::new(dir.join("checkpoints"));
    let log = EventLog::new(dir).checkpoints(checkpointing.handle());
    let mut callbacks: Vec<Box<dyn Callback>> = vec![Box::new(heard.clone())];
    callbacks.extend(extra);
    callbacks.push(Box::new(checkpointing));
    callbacks.push(Box::new(log));
    net_trainer(config(), 0.0, callbacks)
}

#[test]
fn a_panic_in_the_users_step_fails_the_run_with_an_emergency_checkpoint() {
    let dir = temp_dir("step");
    let heard = Heard::default();
    let trainer = with_log(&dir, &heard, None);
    // Steps 0..=8 run; the 10th call panics, before step 10's optimizer step.
    panic_in_step_after(9);
    check_contained(&dir, trainer, &heard, "the user's step panicked", 9);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_panic_in_a_callback_fails_the_run_with_an_emergency_checkpoint() {
    let dir = temp_dir("callback");
    let heard = Heard::default();
    let trainer = with_log(&dir, &heard, Some(Box::new(PanicAt(17))));
    check_contained(&dir, trainer, &heard, "a callback panicked at step 17", 17);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_panic_in_a_batcher_fails_the_run() {
    #[derive(Clone)]
    struct Bomb;
    impl<B: burn::tensor::backend::Backend>
        burn::data::dataloader::batcher::Batcher<B, [f32; 3], common::Batch<B>> for Bomb
    {
        fn batch(&self, items: Vec<[f32; 3]>, device: &B::Device) -> common::Batch<B> {
            assert!(
                items.iter().all(|r| r[0] != common::items(100)[57][0]),
                "the batcher met a bad item"
            );
            common::RowBatcher.batch(items, device)
        }
    }
    let device = Default::default();
    let mut trainer = SupervisedTrainer::builder(
        common::dropout_net::DropoutNet::<common::B>::new(16, 0.0, &device),
        burn::optim::AdamConfig::new().init(),
        config(),
        device,
    )
    .train_data(
        burn::data::dataset::InMemDataset::new(common::items(100)),
        Bomb,
    )
    .build()
    .unwrap();
    let error = trainer.fit().unwrap_err().to_string();
    assert!(
        error.contains("the batcher panicked: the batcher met a bad item"),
        "{error}"
    );
}

/// A retention policy that panics: the save job panics after writing its file.
struct Exploding;

impl RetentionPolicy for Exploding {
    fn describe(&self) -> String {
        "explodes".into()
    }
    fn keep(&self, _entries: &[IndexEntry], _monitor: Option<&Monitor>) -> Vec<bool> {
        panic!("the retention policy exploded")
    }
}

#[test]
fn failed_and_panicking_saves_are_events_and_counted_in_the_report() {
    // A save job that panics (a user's retention policy) counts as a failed save.
    let dir = temp_dir("panicking-save");
    let checkpointing = Checkpointing::new(dir.join("checkpoints"))
        .every_n_steps(10)
        .retention(Retention::Custom(Arc::new(Exploding)));
    let log = EventLog::new(&dir).checkpoints(checkpointing.handle());
    let mut trainer = net_trainer(config(), 0.0, vec![Box::new(checkpointing), Box::new(log)]);
    let report = trainer.fit().expect("training goes on after failed saves");
    // Steps 10 and 20, and the end.
    assert_eq!(report.checkpoint_failures, 3);
    let failed: Vec<serde_json::Value> = events(&dir)
        .into_iter()
        .filter(|e| e["event"] == "checkpoint_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the retention policy exploded"),
        "{}",
        failed[0]
    );
    assert_eq!(
        failed
            .iter()
            .map(|e| e["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [10, 20, 26]
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A folder that disappears: every later save fails, each one an event, the run goes on.
    let dir = temp_dir("failed-save");
    let folder = dir.join("checkpoints");
    let checkpointing = Checkpointing::new(&folder).every_n_steps(5);
    let handle = checkpointing.handle();
    let log = EventLog::new(&dir).checkpoints(checkpointing.handle());
    struct Sabotage(PathBuf, trainer_core::callback::CheckpointHandle);
    impl Callback for Sabotage {
        fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
            if ctx.state.global_step == 7 {
                // The step-5 save is asynchronous: wait for it first.
                while self.1.written() < 1 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                std::fs::rename(&self.0, self.0.with_extension("gone")).unwrap();
                std::fs::write(&self.0, b"a file where the folder was").unwrap();
            }
            Ok(())
        }
    }
    let sabotage = Sabotage(folder.clone(), handle.clone());
    let mut trainer = net_trainer(
        config(),
        0.0,
        vec![Box::new(sabotage), Box::new(checkpointing), Box::new(log)],
    );
    let report = trainer.fit().expect("training goes on after failed saves");
    // Steps 10, 15, 20, 25 and the end.
    assert_eq!(report.checkpoint_failures, 5);
    assert_eq!(handle.failures().len(), 5);
    let log = events(&dir);
    let failed: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| e["event"] == "checkpoint_failed")
        .collect();
    assert_eq!(
        failed
            .iter()
            .map(|e| e["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [10, 15, 20, 25, 26]
    );
    assert!(failed
        .iter()
        .all(|e| e["file"].as_str().unwrap().ends_with(".ckpt")
            && e["reason"].as_str().unwrap().contains("Not a directory")));
    assert_eq!(log.last().unwrap()["status"], "completed");
    std::fs::remove_dir_all(&dir).unwrap();
}
