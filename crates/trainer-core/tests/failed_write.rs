//! A checkpoint write that fails (disk full, no permission) is reported, leaves the previous
//! checkpoint loadable and `latest` pointing at it, and training goes on unless configured to
//! stop. "Disk full" is made real with a file-size limit (`RLIMIT_FSIZE`), which binds root too;
//! the limit is process-wide, so this file holds a single test.
#![cfg(unix)]

#[path = "it/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::dropout_net::net_trainer;
use trainer_core::callback::{Callback, Checkpointing, Context};
use trainer_core::checkpoint::{latest_in, CheckpointSummary};
use trainer_core::prelude::*;

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(2))
        .with_batch_size(8)
        .with_seed(9)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "trainer-failed-write-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `break_it` once, after optimizer step `at`.
struct AfterStep<F: FnMut() + Send>(usize, Option<F>);

impl<F: FnMut() + Send> Callback for AfterStep<F> {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if ctx.state.global_step == self.0 {
            if let Some(mut f) = self.1.take() {
                f();
            }
        }
        Ok(())
    }
}

fn file_size_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) },
        0
    );
    limit
}

fn set_file_size_limit(limit: libc::rlimit) {
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
}

fn check_previous_checkpoint_intact(dir: &Path) {
    let latest = latest_in(dir).unwrap().unwrap();
    assert_eq!(latest, dir.join("epoch-0000-step-000005.ckpt"));
    assert_eq!(CheckpointSummary::read(&latest).unwrap().global_step, 5);
    let mut fresh = net_trainer(config(), 2.0, vec![]);
    fresh.resume_from(dir).unwrap();
    assert_eq!(fresh.state().global_step, 5);
    let temporaries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        temporaries.is_empty(),
        "temporary files left: {temporaries:?}"
    );
}

#[test]
fn failed_writes_keep_the_previous_checkpoint_and_training_goes_on() {
    // Writing past the limit raises SIGXFSZ, which would kill the process: ignore it so the
    // write fails with EFBIG instead.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let original = file_size_limit();
    let max = original.rlim_max;
    // Fills the disk once the step-5 checkpoint is on it (saves are asynchronous).
    let full_disk_after_first = |handle: trainer_core::callback::CheckpointHandle| {
        move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while handle.written() < 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            set_file_size_limit(libc::rlimit {
                rlim_cur: 512,
                rlim_max: max,
            })
        }
    };

    // Disk full: logged, training goes on to the end.
    let dir = temp_dir("full");
    let checkpointing = Checkpointing::new(&dir).every_n_steps(5);
    let handle = checkpointing.handle();
    let full_disk = full_disk_after_first(handle.clone());
    let mut t = net_trainer(
        config(),
        0.0,
        vec![
            Box::new(checkpointing),
            Box::new(AfterStep(6, Some(full_disk))),
        ],
    );
    let report = t.fit();
    set_file_size_limit(original);
    let report = report.expect("training goes on after a failed save");
    assert_eq!(report.steps, 26);
    // Steps 10, 15, 20, 25 and the end save failed.
    assert_eq!(handle.failures().len(), 5, "{:?}", handle.failures());
    assert!(
        handle.failures()[0].contains("File too large")
            || handle.failures()[0].contains("too large"),
        "{:?}",
        handle.failures()
    );
    assert_eq!(handle.written(), 1);
    check_previous_checkpoint_intact(&dir);
    std::fs::remove_dir_all(&dir).unwrap();

    // Disk full with `stop_on_failure`: the run ends with the error.
    let dir = temp_dir("stop");
    let checkpointing = Checkpointing::new(&dir)
        .every_n_steps(5)
        .stop_on_failure(true)
        .save_on_error(false);
    let full_disk = full_disk_after_first(checkpointing.handle());
    let mut t = net_trainer(
        config(),
        0.0,
        vec![
            Box::new(checkpointing),
            Box::new(AfterStep(6, Some(full_disk))),
        ],
    );
    let result = t.fit();
    set_file_size_limit(original);
    let message = result
        .expect_err("the run stops on a failed save")
        .to_string();
    assert!(message.contains("checkpoint save failed"), "{message}");
    assert!(t.state().global_step < 26);
    check_previous_checkpoint_intact(&dir);
    std::fs::remove_dir_all(&dir).unwrap();

    // A read-only folder. Root writes into read-only folders, so this part needs another user.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("read-only");
        let lock_dir = dir.clone();
        let read_only = move || {
            std::fs::set_permissions(&lock_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        };
        let checkpointing = Checkpointing::new(&dir)
            .every_n_steps(5)
            .asynchronous(false);
        let handle = checkpointing.handle();
        let mut t = net_trainer(
            config(),
            0.0,
            vec![
                Box::new(checkpointing),
                Box::new(AfterStep(6, Some(read_only))),
            ],
        );
        t.fit().expect("training goes on after a failed save");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            handle.failures()[0].contains("ermission denied"),
            "{:?}",
            handle.failures()
        );
        check_previous_checkpoint_intact(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    } else {
        eprintln!(
            "running as root: the read-only-folder case is covered by the file-size limit above"
        );
    }
}
