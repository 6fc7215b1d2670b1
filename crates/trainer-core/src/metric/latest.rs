//! The latest readings of a run's metrics, per split, and the names each split can produce.

use std::collections::BTreeMap;

use crate::split::Split;
use crate::state::MetricValues;

/// The latest metric values read back from the device, per split, with the step they were read
/// at.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatestMetrics {
    values: BTreeMap<Split, (usize, MetricValues)>,
}

impl LatestMetrics {
    /// The latest values of `split`.
    pub fn get(&self, split: Split) -> Option<&MetricValues> {
        self.values.get(&split).map(|(_, v)| v)
    }
    /// The optimizer step at which `split`'s latest values were read.
    pub fn step_of(&self, split: Split) -> Option<usize> {
        self.values.get(&split).map(|(s, _)| *s)
    }
    /// The latest training metrics (a window of `log_every` steps).
    pub fn train(&self) -> Option<&MetricValues> {
        self.get(Split::Train)
    }
    /// The latest validation metrics.
    pub fn valid(&self) -> Option<&MetricValues> {
        self.get(Split::Valid)
    }
    /// The latest test metrics.
    pub fn test(&self) -> Option<&MetricValues> {
        self.get(Split::Test)
    }
    /// Every split's latest values with the step they were read at.
    pub fn entries(&self) -> impl Iterator<Item = (Split, usize, &MetricValues)> {
        self.values
            .iter()
            .map(|(split, (step, values))| (*split, *step, values))
    }
    /// Records new values of `split` read at `step`.
    pub fn set(&mut self, split: Split, step: usize, values: MetricValues) {
        self.values.insert(split, (step, values));
    }
}

/// The metrics each split can produce in this run: for checking monitored names at train begin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvailableMetrics {
    names: BTreeMap<Split, Vec<String>>,
}

impl AvailableMetrics {
    /// Declares that `split` produces `names`.
    pub fn set<S: Into<String>>(&mut self, split: Split, names: impl IntoIterator<Item = S>) {
        self.names
            .insert(split, names.into_iter().map(Into::into).collect());
    }

    /// What `split` produces; empty when the run has no such data.
    pub fn names(&self, split: Split) -> Vec<&str> {
        self.names
            .get(&split)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}
