//! The `Checkpointing` callback: cadence, best of a monitored metric, end, error, on demand,
//! retention, the index and the `latest` pointer; loading checks.

use crate::common;

use std::path::{Path, PathBuf};

use common::dropout_net::{net_trainer, parameter_bits, StopAt};
use trainer_core::callback::{Callback, Checkpointing, Context};
use trainer_core::checkpoint::{
    latest_in, CheckpointIndex, CheckpointSummary, Retention, SaveReason,
};
use trainer_core::metric::{Monitor, Split};
use trainer_core::prelude::*;

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(3))
        .with_batch_size(8)
        .with_seed(3)
        .with_validation(Some(Frequency::Epochs(1)))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "trainer-checkpointing-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ckpt_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    names.sort();
    names
}

fn index(dir: &Path) -> CheckpointIndex {
    CheckpointIndex::load(dir).unwrap().expect("an index file")
}

#[test]
fn saves_every_n_steps_and_at_the_end_with_index_and_latest() {
    let dir = temp_dir("steps");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![Box::new(Checkpointing::new(&dir).every_n_steps(10))],
    );
    t.fit().unwrap();
    // 13 steps per epoch, 39 in all.
    assert_eq!(
        ckpt_files(&dir),
        [
            "epoch-0000-step-000010.ckpt",
            "epoch-1-step-20",
            "epoch-2-step-30",
            "epoch-0003-step-000039.ckpt"
        ]
        .iter()
        .map(|n| match *n {
            "epoch-1-step-20" => "epoch-0001-step-000020.ckpt".to_string(),
            "epoch-2-step-30" => "epoch-0002-step-000030.ckpt".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
    );
    let index = index(&dir);
    assert_eq!(index.latest.as_deref(), Some("epoch-0003-step-000039.ckpt"));
    assert_eq!(
        latest_in(&dir).unwrap().unwrap(),
        dir.join("epoch-0003-step-000039.ckpt")
    );
    let reasons: Vec<_> = index
        .checkpoints
        .iter()
        .map(|e| (e.step, e.reasons.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (10, vec![SaveReason::EveryNSteps]),
            (20, vec![SaveReason::EveryNSteps]),
            (30, vec![SaveReason::EveryNSteps]),
            (39, vec![SaveReason::End]),
        ]
    );
    assert_eq!(index.retention, "keep all");
    let summary = CheckpointSummary::read(&dir.join("epoch-0001-step-000020.ckpt")).unwrap();
    assert_eq!(
        (summary.epoch, summary.global_step, summary.batch_in_epoch),
        (1, 20, 7)
    );
    assert_eq!(summary.module_tensors, 4);
    assert_eq!(summary.module_tensor_bytes, 4 * (2 * 16 + 16 + 16 + 1));
    // Adam keeps two moments per parameter tensor.
    assert_eq!(summary.optimizer_tensors, 8);
    assert_eq!(summary.callbacks, vec!["checkpointing".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_end_save_that_falls_on_a_periodic_one_adds_the_reason_instead_of_a_file() {
    let dir = temp_dir("epochs");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![Box::new(
            Checkpointing::new(&dir)
                .every_n_epochs(1)
                .asynchronous(false),
        )],
    );
    t.fit().unwrap();
    assert_eq!(
        ckpt_files(&dir),
        vec![
            "epoch-0001-step-000013.ckpt",
            "epoch-0002-step-000026.ckpt",
            "epoch-0003-step-000039.ckpt"
        ]
    );
    let last = index(&dir).checkpoints.last().cloned().unwrap();
    assert_eq!(
        last.reasons,
        vec![SaveReason::EveryNEpochs, SaveReason::End]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_best_checkpoint_follows_the_monitored_metric() {
    let dir = temp_dir("best");
    let mut t = net_trainer(
        config().with_epochs(Some(4)),
        0.0,
        vec![Box::new(
            Checkpointing::new(&dir)
                .monitor(Monitor::min(Split::Valid, "loss"))
                .save_on_end(false),
        )],
    );
    t.fit().unwrap();
    let history = t.state().history.clone();
    let losses: Vec<f64> = history
        .iter()
        .map(|h| h.valid.as_ref().unwrap()["loss"])
        .collect();
    let (best_epoch, best) = losses.iter().enumerate().fold(
        (0, f64::INFINITY),
        |(be, b), (e, &l)| if l < b { (e, l) } else { (be, b) },
    );
    let index = index(&dir);
    let entry = index.best.clone().unwrap();
    assert_eq!(entry.file, "best-valid-loss.ckpt");
    assert_eq!(entry.best.value, best);
    assert_eq!(entry.best.step, history[best_epoch].global_step);
    // The best file holds the state of that epoch's end.
    let summary = CheckpointSummary::read(&dir.join("best-valid-loss.ckpt")).unwrap();
    assert_eq!(summary.global_step, history[best_epoch].global_step);
    assert_eq!(summary.metrics["valid"]["loss"], best);
    // Every improvement wrote a step checkpoint with the reason `best`.
    let improvements = losses
        .iter()
        .scan(f64::INFINITY, |b, &l| {
            Some(if l < *b {
                *b = l;
                true
            } else {
                false
            })
        })
        .filter(|x| *x)
        .count();
    assert_eq!(index.checkpoints.len(), improvements);
    assert!(index
        .checkpoints
        .iter()
        .all(|e| e.reasons == vec![SaveReason::Best]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn temporary_files_of_a_killed_writer_are_removed_at_train_begin() {
    let dir = temp_dir("stale");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(format!(
        "{}abc123.tmp",
        trainer_core::checkpoint::TEMPORARY_PREFIX
    ));
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let keep = dir.join("notes.txt");
    std::fs::write(&keep, b"mine").unwrap();
    let mut t = net_trainer(
        config().with_epochs(Some(1)),
        0.0,
        vec![Box::new(Checkpointing::new(&dir))],
    );
    t.fit().unwrap();
    assert!(!stale.exists());
    assert!(keep.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn last_n_retention_keeps_the_newest_files_only() {
    let dir = temp_dir("last-n");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![Box::new(
            Checkpointing::new(&dir)
                .every_n_steps(4)
                .retention(Retention::LastN(2)),
        )],
    );
    t.fit().unwrap();
    assert_eq!(
        ckpt_files(&dir),
        vec!["epoch-0002-step-000036.ckpt", "epoch-0003-step-000039.ckpt"]
    );
    let index = index(&dir);
    assert_eq!(
        index.checkpoints.iter().map(|e| e.step).collect::<Vec<_>>(),
        vec![36, 39]
    );
    assert_eq!(index.retention, "keep the last 2");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn best_and_latest_keeps_two_files() {
    let dir = temp_dir("best-latest");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![Box::new(
            Checkpointing::new(&dir)
                .every_n_steps(5)
                .monitor(Monitor::min(Split::Valid, "loss"))
                .retention(Retention::BestAndLatest),
        )],
    );
    t.fit().unwrap();
    assert_eq!(
        ckpt_files(&dir),
        vec!["best-valid-loss.ckpt", "epoch-0003-step-000039.ckpt"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_ranking_retention_without_a_monitor_is_refused() {
    let dir = temp_dir("no-monitor");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![Box::new(
            Checkpointing::new(&dir).retention(Retention::BestK(2)),
        )],
    );
    let message = t.fit().unwrap_err().to_string();
    assert!(message.contains("monitor"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_monitored_metric_that_does_not_exist_is_an_error() {
    let dir = temp_dir("missing-metric");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![Box::new(
            Checkpointing::new(&dir).monitor(Monitor::max(Split::Valid, "acuracy")),
        )],
    );
    let message = t.fit().unwrap_err().to_string();
    assert!(
        message.contains("valid/acuracy") && message.contains("loss"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_now_from_a_handle_saves_at_the_next_step() {
    let dir = temp_dir("save-now");
    let checkpointing = Checkpointing::new(&dir).save_on_end(false);
    let handle = checkpointing.handle();
    handle.save_now();
    let mut t = net_trainer(
        config().with_epochs(Some(1)),
        0.0,
        vec![Box::new(checkpointing)],
    );
    t.fit().unwrap();
    assert_eq!(ckpt_files(&dir), vec!["epoch-0000-step-000001.ckpt"]);
    assert_eq!(handle.written(), 1);
    assert_eq!(
        handle.index().checkpoints[0].reasons,
        vec![SaveReason::Requested]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

struct FailAt(usize);

impl Callback for FailAt {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if ctx.state.global_step == self.0 {
            return Err(TrainerError::Callback {
                callback: "fail-at".into(),
                message: format!("boom at step {}", self.0),
            });
        }
        Ok(())
    }
}

#[test]
fn an_error_leaves_an_emergency_checkpoint_to_resume_from() {
    let dir = temp_dir("error");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![
            Box::new(FailAt(17)),
            Box::new(Checkpointing::new(&dir).every_n_steps(10)),
        ],
    );
    let error = t.fit().unwrap_err();
    assert!(error.to_string().contains("boom at step 17"));
    let index = index(&dir);
    let last = index.checkpoints.last().unwrap();
    assert_eq!(
        (last.step, last.reasons.clone()),
        (17, vec![SaveReason::Error])
    );
    // The emergency checkpoint resumes into the same run as one that never failed.
    let mut straight = net_trainer(config(), 0.0, vec![]);
    straight.fit().unwrap();
    let mut resumed = net_trainer(config(), 3.0, vec![]);
    assert_eq!(
        resumed.resume_from(&dir).unwrap(),
        dir.join("epoch-0001-step-000017.ckpt")
    );
    resumed.fit().unwrap();
    assert!(parameter_bits(resumed.model()) == parameter_bits(straight.model()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resume_from_an_older_checkpoint_forgets_the_abandoned_entries() {
    let dir = temp_dir("abandon");
    let mut t = net_trainer(
        config(),
        0.0,
        vec![
            Box::new(Checkpointing::new(&dir).every_n_steps(10)),
            Box::new(StopAt(35)),
        ],
    );
    t.fit().unwrap();
    let mut again = net_trainer(
        config(),
        0.0,
        vec![
            Box::new(
                Checkpointing::new(&dir)
                    .every_n_steps(10)
                    .save_on_end(false),
            ),
            Box::new(StopAt(12)),
        ],
    );
    again
        .resume_from(dir.join("epoch-0000-step-000010.ckpt"))
        .unwrap();
    again.fit().unwrap();
    let steps: Vec<usize> = index(&dir).checkpoints.iter().map(|e| e.step).collect();
    assert_eq!(steps, vec![10]);
    assert_eq!(
        latest_in(&dir).unwrap().unwrap(),
        dir.join("epoch-0000-step-000010.ckpt")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn names_from_the_folder_never_reach_outside_it() {
    let dir = temp_dir("foreign-names");
    let outside = temp_dir("foreign-names-outside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim.ckpt");
    std::fs::write(&victim, b"not yours").unwrap();
    let linked = outside.join("linked.ckpt");
    std::fs::write(&linked, b"not yours either").unwrap();
    // A link inside the folder with a name of our form, pointing out of it.
    let link = dir.join("epoch-0000-step-000000.ckpt");
    std::os::unix::fs::symlink(&linked, &link).unwrap();
    let entry = |file: &str| {
        serde_json::json!({"file": file, "epoch": 0, "step": 0, "batch_in_epoch": 0,
            "reasons": ["requested"], "monitored": null, "created_unix_ms": 0})
    };
    let index = serde_json::json!({
        "monitor": null, "retention": "all", "latest": "../victim.ckpt", "best": null,
        "checkpoints": [entry(victim.to_str().unwrap()), entry("../victim.ckpt"),
                        entry("epoch-0000-step-000000.ckpt")],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    // Retention keeps one: every foreign entry would be deleted if it were trusted.
    let checkpointing = Checkpointing::new(&dir)
        .every_n_steps(5)
        .retention(Retention::LastN(1));
    let mut t = net_trainer(config(), 0.0, vec![Box::new(checkpointing)]);
    t.fit().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    assert_eq!(std::fs::read(&linked).unwrap(), b"not yours either");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was removed"
    );
    let kept = index_files(&dir);
    assert!(
        kept.iter()
            .all(|f| f.starts_with("epoch-") && !f.contains('/')),
        "{kept:?}"
    );
    assert_eq!(
        latest_in(&dir).unwrap().unwrap(),
        dir.join("epoch-0003-step-000039.ckpt")
    );
    // A `latest` that names a path is an error, not a read outside the folder.
    std::fs::write(dir.join("latest"), victim.to_str().unwrap()).unwrap();
    let message = latest_in(&dir).unwrap_err().to_string();
    assert!(
        message.contains("should name a checkpoint file of this folder"),
        "{message}"
    );
    let mut t = net_trainer(config(), 0.0, vec![]);
    assert!(t.resume_from(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

fn index_files(dir: &Path) -> Vec<String> {
    index(dir).checkpoints.into_iter().map(|e| e.file).collect()
}
