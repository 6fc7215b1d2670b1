use std::collections::BTreeMap;

use burn::tensor::{backend::AutodiffBackend, ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

use crate::hooks::Scalar;
use crate::state_dict::StateDict;

/// The metric sums of a `metric_every` window on the host: what a checkpoint holds of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowTotals {
    /// Sum of each metric over the steps that reported it.
    pub sums: BTreeMap<String, f64>,
    /// Steps that reported each metric.
    pub counts: BTreeMap<String, u64>,
}

/// The job runtime's own record in a checkpoint (beside the trainer's state dict).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The run the checkpoint belongs to.
    pub run_id: String,
    /// The trainer that wrote the state dict.
    pub trainer: String,
    /// The unfinished metrics window.
    pub window: WindowTotals,
    /// The trainer's `save_checkpoint` extra.
    pub extra: Option<serde_json::Value>,
    /// The nodes of a distributed job (absent on one machine): a resume with another count is
    /// refused (each node's data cursor is its own shard's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// The replicas per process of a data-parallel job (absent with one): a resume with
    /// another count is refused (the count fixes which batches a step takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
}

/// A job checkpoint's payload: the trainer's state dict in `module`, the runtime's record in
/// `extension` (format 1.2; see `docs/job.md`). Files of formats 1.0 and 1.1 kept the record in
/// `optimizer`: it is read there when `extension` is absent ([`job_record`]).
pub type JobPayload =
    trainer_core::checkpoint::CheckpointPayload<StateDict, Option<JobRecord>, JobRecord>;

/// The runtime's record of a job checkpoint, wherever its format version keeps it.
pub fn job_record(payload: &JobPayload) -> Option<&JobRecord> {
    payload.extension.as_ref().or(payload.optimizer.as_ref())
}

/// Step metrics summed over a window: host values on the host, device values on the device
/// (read back only when the window is emitted).
pub(crate) struct MetricWindow<B: AutodiffBackend> {
    host: BTreeMap<String, f64>,
    device: BTreeMap<String, Tensor<B::InnerBackend, 1>>,
    counts: BTreeMap<String, u64>,
    /// Sums carried from a checkpoint, not yet put back on the device.
    carried: BTreeMap<String, f64>,
}

impl<B: AutodiffBackend> Default for MetricWindow<B> {
    fn default() -> Self {
        Self {
            host: BTreeMap::new(),
            device: BTreeMap::new(),
            counts: BTreeMap::new(),
            carried: BTreeMap::new(),
        }
    }
}

impl<B: AutodiffBackend> MetricWindow<B> {
    /// A window that continues one a checkpoint holds.
    pub fn from_totals(totals: WindowTotals) -> Self {
        Self {
            carried: totals.sums,
            counts: totals.counts,
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn add(&mut self, metrics: BTreeMap<String, Scalar<B>>) {
        for (name, value) in metrics {
            *self.counts.entry(name.clone()).or_default() += 1;
            match value {
                Scalar::Host(v) => *self.host.entry(name).or_default() += v,
                Scalar::Device(tensor) => {
                    let tensor = tensor.inner().reshape([1]);
                    let sum = match self.device.remove(&name) {
                        Some(sum) => sum.add(tensor),
                        // A carried device sum goes back on the device, so that the sums that
                        // follow are those of an unbroken window.
                        None => match self.carried.remove(&name) {
                            Some(carried) => Tensor::<B::InnerBackend, 1>::from_floats(
                                [carried],
                                &tensor.device(),
                            )
                            .add(tensor),
                            None => tensor,
                        },
                    };
                    self.device.insert(name, sum);
                }
            }
        }
    }

    /// The sums (one read-back per device metric).
    pub fn totals(&self) -> WindowTotals {
        let mut sums = self.carried.clone();
        for (name, v) in &self.host {
            *sums.entry(name.clone()).or_default() += v;
        }
        for (name, tensor) in &self.device {
            *sums.entry(name.clone()).or_default() += tensor.clone().into_scalar().elem::<f64>();
        }
        WindowTotals {
            sums,
            counts: self.counts.clone(),
        }
    }

    /// The means over the window, and an empty window.
    pub fn take_means(&mut self) -> BTreeMap<String, f64> {
        let totals = self.totals();
        *self = Self::default();
        totals
            .sums
            .iter()
            .map(|(name, sum)| {
                (
                    name.clone(),
                    sum / totals.counts.get(name).copied().unwrap_or(1).max(1) as f64,
                )
            })
            .collect()
    }
}
