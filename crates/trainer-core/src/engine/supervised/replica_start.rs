//! Starting a data-parallel run's replicas from rank 0's model and optimizer (at each `fit`),
//! and the ranks of this process among every node's.

use super::BACKEND_RNG;
use super::{replica, replicas, SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
use crate::error::{Result, TrainerError};
use crate::parallel::agreement;
use crate::parallel::fingerprint::weights_fingerprint;

use burn::tensor::backend::AutodiffBackend;

impl<B, M, O, TB, VB> SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// The global rank of this process's rank 0, and the replicas over all nodes.
    pub(super) fn global_ranks(&self) -> (usize, usize) {
        crate::parallel::global_ranks(self.nodes.as_ref(), self.engine.config.replicas)
    }

    /// Starts the other replicas of a data-parallel run from rank 0's model and optimizer.
    pub(super) fn start_replicas(&mut self) -> Result<()> {
        self.replicas = None;
        self.gradient_sync_time = std::time::Duration::ZERO;
        let count = self.engine.config.replicas;
        if count <= 1 && self.nodes.is_none() {
            return Ok(());
        }
        let (first, global_count) = self.global_ranks();
        let devices: Vec<B::Device> = if self.replica_devices.is_empty() {
            vec![self.device.clone(); count - 1]
        } else {
            self.replica_devices.clone()
        };
        let loader = self.train.as_ref().ok_or(TrainerError::MissingData {
            split: "train",
            builder_method: "train_data",
        })?;
        // Every replica clones rank 0's model: lazy weights must be drawn once, before, and from
        // burn's process-wide random stream, which other trainers' forward passes hold.
        {
            let _rng = BACKEND_RNG.acquire(None);
            crate::init::materialize(self.model());
        }
        let start_token = self.nodes.as_ref().map(|_| {
            let state = &self.engine.state;
            agreement::start_token(
                weights_fingerprint(self.model()),
                state.global_step as u64,
                state.epoch,
                state.batch_in_epoch,
            )
        });
        let config = &self.engine.config;
        let start = replicas::ReplicaStart {
            model: self.model.as_ref().expect("model present between steps"),
            optimizer: &self.optimizer,
            loader,
            valid: self.valid.as_ref(),
            test: self.test.as_ref(),
            metrics: &self.train_metrics,
            eval_metrics: &self.metrics,
            windows: std::mem::take(&mut self.progress.replica_windows),
            devices: &devices,
            settings: replica::ReplicaSettings {
                seed: config.seed,
                accumulation: config.gradient_accumulation,
                clipping: config.gradient_clipping,
                count,
                timeout: self.collective_timeout,
                global_count,
                first,
                nodes: self.nodes.clone(),
                start_token,
            },
            timeout: self.collective_timeout,
        };
        self.replicas = Some(replicas::ReplicaSet::start(&self.device, start)?);
        Ok(())
    }
}
