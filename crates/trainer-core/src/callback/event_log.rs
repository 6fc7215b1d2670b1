use std::path::PathBuf;

use super::{Artifact, Callback, CheckpointHandle, Context};
use crate::error::{Result, TrainerError};
use crate::event::{
    Event, EventKind, EventSource, EventWriter, MetricsCsv, Reading, ResumeAt, RunStatus,
    TfEventsWriter,
};
use crate::metric::Split;
use crate::state::StopReason;

/// Writes the run's events to `DIR/events.jsonl` and its metric readings to `DIR/metrics.csv`
/// (schema in `docs/events.md`): `run_started` with the config, `metrics` at every training
/// metric reading, `validation` after each validation or test pass, `checkpoint` for each file a
/// [`Checkpointing`](super::Checkpointing) callback wrote (give its handle with
/// [`checkpoints`](EventLog::checkpoints)), `early_stop` when a callback stopped the run, and
/// `run_ended` last, `completed` or `failed` with the reason.
///
/// A resumed run appends: the lines and rows written after the checkpoint it resumed from (whose
/// state records how many there were) are dropped first, so nothing is written twice. It runs after the other callbacks; add it after
/// `Checkpointing`, so that it sees the checkpoints of the same hook.
pub struct EventLog {
    dir: PathBuf,
    events_path: Option<PathBuf>,
    write_jsonl: bool,
    write_csv: bool,
    key: &'static str,
    tensorboard_dir: Option<PathBuf>,
    tensorboard: Option<TfEventsWriter>,
    /// The TensorBoard file and its length when the checkpoint being resumed from was taken.
    tensorboard_at: Option<(String, u64)>,
    run_config: Option<serde_json::Value>,
    checkpoints: Option<CheckpointHandle>,
    events: Option<EventWriter>,
    csv: Option<MetricsCsv>,
    last_reading: Option<(Split, usize)>,
    checkpoints_seen: usize,
    failures_seen: usize,
    pending_end: Option<Event>,
    sources: Vec<Box<dyn EventSource>>,
    /// Lines and rows the files held when the checkpoint being resumed from was taken.
    resume_at: Option<(usize, usize)>,
}

impl EventLog {
    /// Logs into `dir` (created if needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            events_path: None,
            write_jsonl: true,
            write_csv: true,
            key: "event_log",
            tensorboard_dir: None,
            tensorboard: None,
            tensorboard_at: None,
            run_config: None,
            checkpoints: None,
            events: None,
            csv: None,
            last_reading: None,
            checkpoints_seen: 0,
            failures_seen: 0,
            pending_end: None,
            sources: Vec::new(),
            resume_at: None,
        }
    }

    /// Reports the files this checkpointing callback writes.
    pub fn checkpoints(mut self, handle: CheckpointHandle) -> Self {
        self.checkpoints = Some(handle);
        self
    }

    /// Also writes the events `source` makes on another thread (polled at each callback
    /// round that reports checkpoints, settled before `run_ended`).
    pub fn source(mut self, source: impl EventSource + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Writes the events to this file instead of `DIR/events.jsonl`.
    pub fn events_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.events_path = Some(path.into());
        self
    }

    /// Whether to write `DIR/events.jsonl` (default: yes).
    pub fn jsonl(mut self, write: bool) -> Self {
        self.write_jsonl = write;
        self
    }

    /// Also writes TensorBoard event files into `dir` (see
    /// [`TensorBoard`](super::TensorBoard)).
    pub fn tensorboard(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tensorboard_dir = Some(dir.into());
        self
    }

    /// The key of its state in checkpoints (default `event_log`): two logs in one run need two.
    pub fn state_key(mut self, key: &'static str) -> Self {
        self.key = key;
        self
    }

    /// Whether to write `DIR/metrics.csv` (default: yes).
    pub fn csv(mut self, write: bool) -> Self {
        self.write_csv = write;
        self
    }

    /// The config `run_started` carries, instead of the trainer's (the job runtime gives the
    /// job spec).
    pub fn run_config(mut self, config: serde_json::Value) -> Self {
        self.run_config = Some(config);
        self
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        if let Some(writer) = &mut self.events {
            writer.write(event)?;
        }
        if let Some(writer) = &mut self.tensorboard {
            writer.write(event)?;
        }
        Ok(())
    }

    /// Opens the TensorBoard file: the one the checkpoint names, cut to its length then, or a
    /// new one (a fresh run, a checkpoint without it, or a file that is gone).
    fn open_tensorboard(&mut self, fresh: bool) -> Result<()> {
        let Some(dir) = self.tensorboard_dir.clone() else {
            return Ok(());
        };
        let at = self.tensorboard_at.take().filter(|_| !fresh);
        if fresh {
            TfEventsWriter::remove_previous(&dir);
        }
        let writer = match at {
            Some((file, bytes)) => match TfEventsWriter::resume(&dir, &file, bytes) {
                Ok(writer) => writer,
                Err(e) => {
                    log::warn!("TensorBoard: {e}; writing a new event file");
                    TfEventsWriter::create(&dir)?
                }
            },
            None => TfEventsWriter::create(&dir)?,
        };
        self.tensorboard = Some(writer);
        Ok(())
    }

    /// A `metrics` event and CSV row for a training reading not logged yet.
    fn train_reading(&mut self, ctx: &Context<'_>) -> Result<()> {
        let (Some(step), Some(values)) = (ctx.metrics.step_of(Split::Train), ctx.metrics.train())
        else {
            return Ok(());
        };
        if self.last_reading == Some((Split::Train, step)) {
            return Ok(());
        }
        self.last_reading = Some((Split::Train, step));
        let epoch = ctx.state.epoch;
        self.emit(&Event::new(
            EventKind::Metrics(Reading::new(Split::Train, values)),
            step,
            epoch,
        ))?;
        if let Some(csv) = &mut self.csv {
            csv.write(step, epoch, Split::Train, values)?;
        }
        Ok(())
    }

    fn eval_reading(&mut self, ctx: &Context<'_>, split: Split) -> Result<()> {
        let Some(values) = ctx.metrics.get(split) else {
            return Ok(());
        };
        let (step, epoch) = (ctx.state.global_step, ctx.state.epoch);
        self.emit(&Event::new(
            EventKind::Validation(Reading::new(split, values)),
            step,
            epoch,
        ))?;
        if let Some(csv) = &mut self.csv {
            csv.write(step, epoch, split, values)?;
        }
        Ok(())
    }

    /// `checkpoint` events for files written since the last look, then the sources' events.
    fn written_checkpoints(&mut self) -> Result<()> {
        let Some(handle) = &self.checkpoints else {
            return self.source_events(false);
        };
        let written = handle.written_since(self.checkpoints_seen);
        self.checkpoints_seen += written.len();
        let failed = handle.failures_since(self.failures_seen);
        self.failures_seen += failed.len();
        for entry in written {
            self.emit(&Event::new(
                EventKind::Checkpoint {
                    file: entry.file,
                    files: entry.files,
                },
                entry.step,
                entry.epoch,
            ))?;
        }
        for failure in failed {
            let kind = EventKind::CheckpointFailed {
                file: failure.file,
                reason: failure.reason,
            };
            self.emit(&Event::new(kind, failure.step, failure.epoch))?;
        }
        self.source_events(false)
    }

    /// Writes the sources' events; `settle` first waits for their work.
    fn source_events(&mut self, settle: bool) -> Result<()> {
        let mut events = Vec::new();
        for source in &mut self.sources {
            events.extend(if settle {
                source.settle()
            } else {
                source.poll()
            });
        }
        events.iter().try_for_each(|event| self.emit(event))
    }

    /// Writes `run_ended`, after the sources' last events.
    fn emit_end(&mut self, event: &Event) -> Result<()> {
        self.source_events(true)?;
        self.emit(event)
    }

    fn end(&mut self, ctx: &Context<'_>, status: RunStatus, reason: Option<String>) -> Result<()> {
        let event = Event::new(
            EventKind::RunEnded { status, reason },
            ctx.state.global_step,
            ctx.state.epoch,
        );
        // A checkpoint asked for in this hook is written after it: `run_ended` waits for it.
        if ctx.control.checkpoint_requested() {
            self.pending_end = Some(event);
            Ok(())
        } else {
            self.emit_end(&event)
        }
    }
}

impl Callback for EventLog {
    fn key(&self) -> Option<String> {
        Some(self.key.into())
    }

    fn runs_last(&self) -> bool {
        true
    }

    fn state(&self) -> Option<serde_json::Value> {
        if self.events.is_none() && self.tensorboard.is_none() {
            return None;
        }
        let mut state = serde_json::json!({
            "lines": self.events.as_ref().map_or(0, EventWriter::lines),
            "rows": self.csv.as_ref().map_or(0, MetricsCsv::rows),
        });
        if let Some(writer) = &self.tensorboard {
            state["tensorboard"] =
                serde_json::json!({"file": writer.file_name(), "bytes": writer.bytes()});
        }
        Some(state)
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        let count = |field: &str| {
            state
                .get(field)
                .and_then(serde_json::Value::as_u64)
                .map(|n| n as usize)
        };
        self.resume_at = match (count("lines"), count("rows")) {
            (Some(lines), Some(rows)) => Some((lines, rows)),
            _ => {
                return Err(TrainerError::State {
                    key: self.key.into(),
                    message: format!("expected lines and rows, found {state}"),
                })
            }
        };
        let tensorboard = state.get("tensorboard");
        self.tensorboard_at = tensorboard.and_then(|t| {
            Some((
                t.get("file")?.as_str()?.to_string(),
                t.get("bytes")?.as_u64()?,
            ))
        });
        Ok(())
    }

    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let step = ctx.state.global_step;
        let fresh = step == 0 && ctx.state.epoch == 0 && ctx.state.batch_in_epoch == 0;
        let (events_at, csv_at) = match self.resume_at.take() {
            _ if fresh => (ResumeAt::Fresh, ResumeAt::Fresh),
            Some((lines, rows)) => (ResumeAt::Lines(lines), ResumeAt::Lines(rows)),
            // A checkpoint without this callback's state: cut by step.
            None => (ResumeAt::Step(step), ResumeAt::Step(step)),
        };
        if self.write_jsonl {
            let events_path = self
                .events_path
                .clone()
                .unwrap_or_else(|| self.dir.join("events.jsonl"));
            self.events = Some(EventWriter::open(events_path, events_at)?);
        }
        self.open_tensorboard(fresh)?;
        if self.write_csv {
            let mut columns: Vec<&str> = [Split::Train, Split::Valid, Split::Test]
                .iter()
                .flat_map(|s| ctx.metric_names(*s))
                .collect();
            columns.sort_unstable();
            columns.dedup();
            self.csv = Some(MetricsCsv::open(
                self.dir.join("metrics.csv"),
                &columns,
                csv_at,
            )?);
        }
        // A resumed run's restored reading was logged by the session that made it.
        self.last_reading = ctx.metrics.step_of(Split::Train).map(|s| (Split::Train, s));
        self.checkpoints_seen = self
            .checkpoints
            .as_ref()
            .map_or(0, CheckpointHandle::written);
        self.failures_seen = self.checkpoints.as_ref().map_or(0, |h| h.failures().len());
        let config = match &self.run_config {
            Some(config) => config.clone(),
            None => serde_json::to_value(ctx.config).map_err(|e| TrainerError::Callback {
                callback: "event_log".into(),
                message: e.to_string(),
            })?,
        };
        let kind = EventKind::RunStarted {
            schema_version: crate::event::EVENT_SCHEMA_VERSION,
            config,
            resumed: !fresh,
        };
        self.emit(&Event::new(kind, step, ctx.state.epoch))
    }

    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.written_checkpoints()?;
        self.train_reading(ctx)
    }

    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.eval_reading(ctx, Split::Valid)
    }

    fn on_test_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.eval_reading(ctx, Split::Test)
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.train_reading(ctx)?;
        if let Some(summary) = ctx.state.history.last() {
            let mut means = summary.train.clone();
            means.insert("lr".into(), summary.learning_rate);
            let kind = EventKind::Epoch(Reading::new(Split::Train, &means));
            self.emit(&Event::new(kind, ctx.state.global_step, ctx.state.epoch))?;
        }
        self.written_checkpoints()
    }

    fn on_checkpoint(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        self.written_checkpoints()?;
        if let Some(event) = self.pending_end.take() {
            self.emit_end(&event)?;
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.train_reading(ctx)?;
        self.written_checkpoints()?;
        let reason = match &ctx.state.stop_reason {
            Some(StopReason::Requested(reason)) => {
                let kind = EventKind::EarlyStop {
                    reason: reason.clone(),
                };
                self.emit(&Event::new(kind, ctx.state.global_step, ctx.state.epoch))?;
                Some(reason.clone())
            }
            Some(StopReason::Cancelled(how)) => {
                return self.end(ctx, RunStatus::Cancelled, Some(how.clone()))
            }
            Some(other) => Some(other.to_string()),
            None => None,
        };
        self.end(ctx, RunStatus::Completed, reason)
    }

    fn on_artifact(&mut self, ctx: &mut Context<'_>, artifact: &Artifact) -> Result<()> {
        self.written_checkpoints()?;
        let kind = EventKind::Artifact {
            kind: artifact.kind.clone(),
            file: artifact.file.clone(),
        };
        self.emit(&Event::new(kind, artifact.step, ctx.state.epoch))
    }

    fn on_exception(&mut self, ctx: &mut Context<'_>, error: &TrainerError) {
        let _ = self.written_checkpoints();
        // A `completed` end that waited for the final checkpoint: the run failed after all
        // (the final save failed, or an error came after `TrainEnd`).
        self.pending_end = None;
        if let Err(e) = self.end(ctx, RunStatus::Failed, Some(error.to_string())) {
            log::warn!("event log: {e}");
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // A run_ended that waited for a checkpoint that never came (a failed emergency save).
        if let Some(event) = self.pending_end.take() {
            let _ = self.emit_end(&event);
        }
    }
}
