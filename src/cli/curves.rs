//! A run's curves from its event log (`events.jsonl`), for `trainer plot`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trainer_core::event::Event;
use trainer_core::metric::{Split, TIMING_METRICS};

use crate::plot::{Panel, Series};

/// What the x axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    /// Optimizer steps: every training reading and every validation.
    Step,
    /// Epochs: each epoch's mean training metrics and its validation.
    Epoch,
}

/// Why a run's events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CurvesError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not an event.
    #[error("{path}:{line}: not an event of the documented schema: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A metric asked for is not in the log.
    #[error("no metric `{metric}` in {path}; it has: {known}")]
    UnknownMetric {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        metric: String,
        /// The names present.
        known: String,
    },
    /// The log holds no metrics.
    #[error("{path} holds no metrics to plot")]
    NoMetrics {
        /// The file.
        path: PathBuf,
    },
}

/// The events of a run: `path` is an `events.jsonl` or a run folder holding one.
pub fn read_events(path: &Path) -> Result<(PathBuf, Vec<Event>), CurvesError> {
    let file = if path.is_dir() {
        path.join("events.jsonl")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| CurvesError::Read {
        path: file.clone(),
        source,
    })?;
    let events = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| CurvesError::Line {
                path: file.clone(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<Event>, _>>()?;
    Ok((file, events))
}

/// One panel per metric (training and validation curves) and the learning rate on its own
/// panel. `metrics` empty means every metric in the log but the throughput and time ones.
/// Non-finite values are left out.
pub fn run_panels(
    file: &Path,
    events: &[Event],
    metrics: &[String],
    x: XAxis,
) -> Result<Vec<Panel>, CurvesError> {
    let train_kind = match x {
        XAxis::Step => "metrics",
        XAxis::Epoch => "epoch",
    };
    let x_of = |e: &Event| match x {
        XAxis::Step => e.step as f64,
        XAxis::Epoch => e.epoch as f64,
    };
    let known: BTreeSet<String> = events
        .iter()
        .filter_map(Event::reading)
        .flat_map(|reading| reading.metrics.keys().cloned())
        .filter(|name| name != "lr")
        .collect();
    if known.is_empty() {
        return Err(CurvesError::NoMetrics {
            path: file.to_path_buf(),
        });
    }
    // By default the model's metrics; throughput and time only when asked for.
    let wanted: Vec<String> = if metrics.is_empty() {
        known
            .iter()
            .filter(|m| !TIMING_METRICS.contains(&m.as_str()))
            .cloned()
            .collect()
    } else {
        metrics.to_vec()
    };
    let curve = |name: &str, split: Split, metric: &str| -> Vec<(f64, f64)> {
        events
            .iter()
            .filter(|e| e.name() == name)
            .filter_map(|e| Some((e, e.reading().filter(|r| r.split == split)?)))
            .filter_map(|(e, reading)| Some((x_of(e), (*reading.metrics.get(metric)?)?)))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    let mut panels = Vec::new();
    for metric in &wanted {
        if !known.contains(metric) {
            return Err(CurvesError::UnknownMetric {
                path: file.to_path_buf(),
                metric: metric.clone(),
                known: known.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        let series: Vec<Series> = [
            ("train", curve(train_kind, Split::Train, metric)),
            ("valid", curve("validation", Split::Valid, metric)),
        ]
        .into_iter()
        .filter(|(_, points)| !points.is_empty())
        .map(|(name, points)| Series {
            name: name.to_string(),
            points,
        })
        .collect();
        if !series.is_empty() {
            panels.push(Panel {
                title: metric.clone(),
                y_label: metric.clone(),
                series,
            });
        }
    }
    let lr = curve(train_kind, Split::Train, "lr");
    if !lr.is_empty() {
        panels.push(Panel {
            title: "learning rate".into(),
            y_label: "lr".into(),
            series: vec![Series {
                name: "lr".into(),
                points: lr,
            }],
        });
    }
    Ok(panels)
}
