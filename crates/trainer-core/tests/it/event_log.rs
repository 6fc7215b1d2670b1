//! The event log and the CSV: every line parses and fits the documented schema, events come in
//! order with `run_ended` last, and a resumed run appends without duplicates.

use crate::common;

use std::path::{Path, PathBuf};

use common::dropout_net::{net_trainer, StopAt};
use trainer_core::callback::{Callback, Checkpointing, Context, EventLog};
use trainer_core::event::{Event, EventKind, EventWriter, Reading, ResumeAt, RunStatus};
use trainer_core::metric::Split;
use trainer_core::prelude::*;

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(3))
        .with_batch_size(8)
        .with_seed(13)
        .with_log_every(5)
        .with_validation(Some(Frequency::Epochs(1)))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-events-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every line, parsed; each kind checked against the fields `docs/events.md` says it carries.
fn events(dir: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let raw: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            for field in ["event", "time_unix_ms", "step", "epoch"] {
                assert!(raw.get(field).is_some(), "`{field}` missing: {line}");
            }
            // Each kind carries the fields docs/events.md lists (the typed form checks it on read).
            let event: Event =
                serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{e}: {line}"));
            // The bytes written are the bytes the typed event writes back.
            assert_eq!(
                serde_json::to_string(&event).unwrap(),
                line,
                "a line reads back to other bytes"
            );
            event
        })
        .collect()
}

fn metrics(event: &Event) -> Option<&std::collections::BTreeMap<String, Option<f64>>> {
    event.reading().map(|r| &r.metrics)
}

fn status(event: &Event) -> Option<RunStatus> {
    match &event.kind {
        EventKind::RunEnded { status, .. } => Some(*status),
        _ => None,
    }
}

fn reason(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::RunEnded { reason, .. } => reason.as_deref(),
        EventKind::EarlyStop { reason } | EventKind::CheckpointFailed { reason, .. } => {
            Some(reason)
        }
        _ => None,
    }
}

fn file(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::Checkpoint { file, .. } | EventKind::CheckpointFailed { file, .. } => Some(file),
        EventKind::Artifact { file, .. } => file.as_deref(),
        _ => None,
    }
}

use trainer_core::metric::TIMING_METRICS as TIMING;

/// The metrics of an event without the timing ones, as JSON.
fn deterministic(event: &Event) -> String {
    let mut metrics = metrics(event).cloned().unwrap_or_default();
    metrics.retain(|k, _| !TIMING.contains(&k.as_str()));
    serde_json::to_string(&metrics).unwrap()
}

/// CSV rows without the timing columns.
fn csv_without_timing(text: &str) -> Vec<String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !TIMING.contains(&header[i]))
        .collect();
    std::iter::once(header.join(","))
        .chain(lines.map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",")
        }))
        .collect()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(Event::name).collect()
}

/// A trainer that checkpoints every 10 steps and logs events; 13 steps per epoch.
fn logged(dir: &Path, extra: Vec<Box<dyn Callback>>) -> common::dropout_net::NetTrainer {
    let checkpointing = Checkpointing::new(dir.join("checkpoints")).every_n_steps(10);
    let log = EventLog::new(dir).checkpoints(checkpointing.handle());
    let mut callbacks: Vec<Box<dyn Callback>> = extra;
    callbacks.push(Box::new(checkpointing));
    callbacks.push(Box::new(log));
    net_trainer(config(), 0.0, callbacks)
}

#[test]
fn a_run_logs_every_event_in_order() {
    let dir = temp_dir("run");
    logged(&dir, vec![]).fit().unwrap();
    let events = events(&dir);
    assert_eq!(events[0].name(), "run_started");
    let EventKind::RunStarted {
        resumed,
        config,
        schema_version,
    } = &events[0].kind
    else {
        panic!("{:?}", events[0])
    };
    assert_eq!((*resumed, *schema_version), (false, 1));
    assert_eq!(config["batch_size"], 8);
    let last = events.last().unwrap();
    assert_eq!(
        (last.name(), status(last)),
        ("run_ended", Some(RunStatus::Completed))
    );
    assert_eq!(reason(last), Some("all epochs completed"));
    // Training readings every 5 steps, plus each epoch's remainder (13, 26, 39).
    let train: Vec<usize> = events
        .iter()
        .filter(|e| e.name() == "metrics")
        .map(|e| e.step)
        .collect();
    assert_eq!(train, vec![5, 10, 13, 15, 20, 25, 26, 30, 35, 39]);
    let valid: Vec<(usize, usize)> = events
        .iter()
        .filter(|e| e.name() == "validation")
        .map(|e| (e.step, e.epoch))
        .collect();
    assert_eq!(valid, vec![(13, 1), (26, 2), (39, 3)]);
    let epochs: Vec<(usize, usize)> = events
        .iter()
        .filter(|e| e.name() == "epoch")
        .map(|e| (e.step, e.epoch))
        .collect();
    assert_eq!(epochs, vec![(13, 1), (26, 2), (39, 3)]);
    let checkpoints: Vec<String> = events
        .iter()
        .filter(|e| e.name() == "checkpoint")
        .map(|e| file(e).unwrap().to_string())
        .collect();
    assert_eq!(
        checkpoints,
        [
            "epoch-0000-step-000010.ckpt",
            "epoch-0001-step-000020.ckpt",
            "epoch-0002-step-000030.ckpt",
            "epoch-0003-step-000039.ckpt"
        ]
    );
    // The end checkpoint comes before `run_ended`.
    assert_eq!(kinds(&events)[events.len() - 2], "checkpoint");
    // Steps never go back (checkpoint events carry their checkpoint's step and come when the
    // background write finishes).
    let steps: Vec<usize> = events
        .iter()
        .filter(|e| e.name() != "checkpoint")
        .map(|e| e.step)
        .collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("step,epoch,split,accuracy,elapsed_seconds,eta_seconds,f1_macro,loss,lr,precision_macro,recall_macro,samples_per_second,steps_per_second"));
    assert_eq!(rows.count(), train.len() + valid.len());
    // Throughput and time left, at each logged step.
    let logged: Vec<&Event> = events
        .iter()
        .filter(|e| e.name() == "metrics" && e.step % 5 == 0)
        .collect();
    for event in &logged {
        let m = metrics(event).unwrap();
        for name in TIMING {
            assert!(
                m[name].is_some_and(|v| v >= 0.0),
                "{name} at step {}: {m:?}",
                event.step
            );
        }
        assert!(m["samples_per_second"].unwrap() > m["steps_per_second"].unwrap());
    }
    let first = metrics(logged[0]).unwrap();
    let pace = 34.0 / first["steps_per_second"].unwrap();
    assert!(
        (first["eta_seconds"].unwrap() - pace).abs() < 1e-9 * pace.max(1.0),
        "eta = steps left / steps per second: {first:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resumed_run_appends_without_duplicates() {
    let straight = temp_dir("straight");
    logged(&straight, vec![]).fit().unwrap();

    let dir = temp_dir("resumed");
    // Stopped at step 23; resumed from the step-20 checkpoint, so steps 21..23 are redone.
    logged(&dir, vec![Box::new(StopAt(23))]).fit().unwrap();
    let mut resumed = logged(&dir, vec![]);
    resumed
        .resume_from(dir.join("checkpoints/epoch-0001-step-000020.ckpt"))
        .unwrap();
    resumed.fit().unwrap();

    let values = |events: &[Event], kind: &str| -> Vec<(usize, String)> {
        events
            .iter()
            .filter(|e| e.name() == kind)
            .map(|e| (e.step, deterministic(e)))
            .collect()
    };
    let (a, b) = (events(&straight), events(&dir));
    assert_eq!(values(&b, "metrics"), values(&a, "metrics"));
    assert_eq!(values(&b, "validation"), values(&a, "validation"));
    assert_eq!(values(&b, "epoch"), values(&a, "epoch"));
    let starts: Vec<Option<bool>> = b
        .iter()
        .filter(|e| e.name() == "run_started")
        .map(|e| match &e.kind {
            EventKind::RunStarted { resumed, .. } => Some(*resumed),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![Some(false), Some(true)]);
    // The interrupted session's end (at step 23) is gone with the steps after 20.
    let ends: Vec<usize> = b
        .iter()
        .filter(|e| e.name() == "run_ended")
        .map(|e| e.step)
        .collect();
    assert_eq!(ends, vec![39]);
    let rows =
        |dir: &Path| csv_without_timing(&std::fs::read_to_string(dir.join("metrics.csv")).unwrap());
    assert_eq!(rows(&dir), rows(&straight));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&straight).unwrap();
}

struct FailAt(usize);

impl Callback for FailAt {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if ctx.state.global_step == self.0 {
            return Err(TrainerError::Callback {
                callback: "fail-at".into(),
                message: "boom".into(),
            });
        }
        Ok(())
    }
}

#[test]
fn a_failed_run_ends_with_failed_after_its_emergency_checkpoint() {
    let dir = temp_dir("failed");
    assert!(logged(&dir, vec![Box::new(FailAt(17))]).fit().is_err());
    let events = events(&dir);
    let n = events.len();
    assert_eq!(events[n - 2].name(), "checkpoint");
    assert_eq!(file(&events[n - 2]), Some("epoch-0001-step-000017.ckpt"));
    let last = &events[n - 1];
    assert_eq!(
        (last.name(), status(last), last.step),
        ("run_ended", Some(RunStatus::Failed), 17)
    );
    assert!(reason(last).unwrap().contains("boom"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_values_are_null_and_a_torn_last_line_is_dropped_on_resume() {
    let dir = temp_dir("torn");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.jsonl");
    let values = [("loss".to_string(), f64::NAN), ("lr".to_string(), 0.1)].into();
    let event = Event::new(
        EventKind::Metrics(Reading::new(Split::Train, &values)),
        4,
        0,
    );
    let line = serde_json::to_string(&event).unwrap();
    assert!(line.contains(r#""loss":null"#), "{line}");
    let later = serde_json::to_string(&Event::new(
        EventKind::Metrics(Reading::new(Split::Train, &Default::default())),
        9,
        0,
    ))
    .unwrap();
    std::fs::write(&path, format!("{line}\n{later}\n{{\"event\":\"metr")).unwrap();
    EventWriter::open(&path, ResumeAt::Step(5)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{line}\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lines_written_by_the_previous_release_read_back_to_the_same_bytes() {
    // Every kind of line as the release before the typed events wrote it (a digits run, a job,
    // a job's sample, an early stop): the typed form reads each and writes the same bytes.
    let text = include_str!("fixtures/events-format-1.1.jsonl");
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let event: Event = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        names.insert(event.name().to_string());
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
    }
    let expected = [
        "checkpoint",
        "early_stop",
        "epoch",
        "metrics",
        "run_ended",
        "run_started",
        "sample",
        "validation",
    ];
    assert_eq!(names.into_iter().collect::<Vec<_>>(), expected);
    // A sample is an artifact of kind `sample`.
    let sample: Event =
        serde_json::from_str(text.lines().find(|l| l.contains("\"sample\"")).unwrap()).unwrap();
    assert!(
        matches!(&sample.kind, EventKind::Artifact { kind, file: Some(_) } if kind == "sample")
    );
}
