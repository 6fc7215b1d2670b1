//! The builder's data-parallel settings: replica devices, nodes, the collective timeout, and
//! the ranks they give this process.

use std::time::Duration;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;

use super::SupervisedTrainerBuilder;
use crate::checkpoint::HostRecord;
use crate::error::{Result, TrainerError};
use crate::parallel::{global_ranks, NodeConfig};
use crate::step::{TrainStep, ValidStep};

impl<B, M, O, TB, VB> SupervisedTrainerBuilder<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    M::Record: HostRecord<B>,
    O: Optimizer<M, B>,
    O::Record: HostRecord<B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// The devices of replicas 1 to `replicas - 1` when the config asks for several
    /// ([`TrainerConfig::replicas`](crate::config::TrainerConfig::replicas)); rank 0 trains on the builder's device. Without this call
    /// every replica trains on the builder's device (threads sharing a CPU, say).
    pub fn replica_devices(mut self, devices: Vec<B::Device>) -> Self {
        self.replica_devices = devices;
        self
    }

    /// Trains as one node of several machines (see [`NodeConfig`]): every node runs the same
    /// program, `replicas` replicas each, and their gradients are averaged through
    /// burn-collective's orchestrator.
    pub fn nodes(mut self, nodes: NodeConfig) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// After every optimizer step, check that every replica holds rank 0's weights, bit for bit
    /// (each reads its weights back to the host: for tests and for doubts about a backend's
    /// determinism, not for speed). A difference fails the run naming the replica and the step.
    pub fn verify_replicas(mut self, verify: bool) -> Self {
        self.verify_replicas = verify;
        self
    }

    /// How long a replica waits for the others in a collective call before the run fails
    /// ([`DEFAULT_COLLECTIVE_TIMEOUT`](super::DEFAULT_COLLECTIVE_TIMEOUT) unless set).
    pub fn collective_timeout(mut self, timeout: Duration) -> Self {
        self.collective_timeout = timeout;
        self
    }

    /// This process's rank 0 among all replicas of all nodes, and their count; or why the
    /// replica devices or the node settings cannot work.
    pub(super) fn global_ranks(&self) -> Result<(usize, usize)> {
        let replicas = self.config.replicas;
        if replicas > 1
            && !self.replica_devices.is_empty()
            && self.replica_devices.len() != replicas - 1
        {
            return Err(TrainerError::InvalidConfig {
                field: "replicas",
                value: replicas.to_string(),
                reason: format!(
                    "the builder was given {} replica devices; replicas 1 to {} need one each",
                    self.replica_devices.len(),
                    replicas - 1
                ),
            });
        }
        if let Some(nodes) = &self.nodes {
            nodes
                .validate()
                .map_err(|reason| TrainerError::InvalidConfig {
                    field: "nodes",
                    value: format!("node {} of {}", nodes.rank, nodes.nodes),
                    reason,
                })?;
        }
        Ok(global_ranks(self.nodes.as_ref(), replicas))
    }
}
