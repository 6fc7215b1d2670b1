//! A replica of a data-parallel run other than rank 0: a thread with its own model, optimizer
//! and shard of the training data, that does what rank 0 tells it, batch by batch.

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

use super::micro_step::{apply_gradients, batch_seed, forward_backward, replica_weight};
use crate::config::GradientClipping;
use crate::data::{Batches, DataCursor, DataLoader};
use crate::metric::{MetricAccumulator, Metrics, Split, Totals};
use crate::parallel::collective::WatchState;
use crate::parallel::fingerprint::weights_fingerprint;
use crate::parallel::{agreement, collective, flat, host_move, NodeConfig};
use crate::step::{TrainStep, ValidStep};

/// What rank 0 tells a replica.
pub(super) enum Command<M> {
    /// Train on the shard's batch `step` of `epoch`; then, with `lr`, average the gradients with
    /// the other replicas and step the optimizer.
    Batch {
        epoch: usize,
        step: usize,
        lr: Option<f64>,
    },
    /// Send the training-metric totals of the window (with the replica's rank), and with
    /// `reset` start a new window.
    Window {
        reply: std::sync::mpsc::Sender<(usize, Totals)>,
        reset: bool,
    },
    /// Send the fingerprint of the replica's weights.
    Fingerprint(std::sync::mpsc::Sender<u64>),
    /// Take these weights (rank 0's, which a callback restored).
    SetModel(M),
    /// Evaluate the replica's shard of `split`'s data and send the metric totals.
    Eval {
        split: Split,
        reply: std::sync::mpsc::Sender<(usize, Result<Totals, String>)>,
    },
    /// Take part in an agreement of rank 0s over several machines
    /// (`parallel::agreement::any`) on this many flags, raising none.
    Agree(usize),
    /// Leave the collective and end.
    Finish,
}

/// The settings a replica trains with (rank 0's config).
#[derive(Clone)]
pub(crate) struct ReplicaSettings {
    pub seed: u64,
    pub accumulation: usize,
    pub clipping: Option<GradientClipping>,
    /// Replicas in this process.
    pub count: usize,
    /// How long a replica waits for the backend RNG (the collective timeout).
    pub timeout: std::time::Duration,
    /// Replicas over all nodes, and the global rank of this process's rank 0.
    pub global_count: usize,
    pub first: usize,
    /// The other machines, when there are.
    pub nodes: Option<NodeConfig>,
    /// With other machines: what every peer checks it shares before the first step
    /// (`parallel::agreement`).
    pub start_token: Option<u64>,
}

/// One replica (rank 1 and up).
pub(super) struct Replica<B: AutodiffBackend, M: AutodiffModule<B>, O, TB, VB> {
    pub rank: usize,
    pub settings: ReplicaSettings,
    pub model: M,
    pub optimizer: O,
    pub loader: DataLoader<B, TB>,
    /// This replica's shards of the validation and test data.
    pub valid: Option<DataLoader<B::InnerBackend, VB>>,
    pub test: Option<DataLoader<B::InnerBackend, VB>>,
    pub eval_metrics: Metrics<B::InnerBackend>,
    pub window: MetricAccumulator<B::InnerBackend>,
    pub accumulator: GradientsAccumulator<M>,
    /// The shard's batches of the epoch being trained: `(epoch, next step, batches)`.
    pub batches: Option<(usize, usize, Batches<B, TB>)>,
    /// Shared with rank 0 and its watchdog.
    pub watch: Arc<WatchState>,
    /// Rank 0's device when it is not this replica's: the gradient buffer is averaged there,
    /// going through the host both ways (burn-wgpu 0.21 cannot copy a tensor from one wgpu
    /// device to another, which burn-collective's all-reduce would do).
    pub reduce_on: Option<B::Device>,
}

impl<B, M, O, TB, VB> Replica<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + TrainStep<B, TB>,
    M::InnerModule: ValidStep<B::InnerBackend, VB>,
    O: Optimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    /// Registers with the collective, then serves rank 0's commands until told to finish or
    /// until rank 0 goes away. An error is the replica's failure, for rank 0 to report.
    pub fn run(mut self, commands: Receiver<Command<M>>) -> Result<(), String> {
        let device = self.loader.device().clone();
        let global = self.settings.first + self.rank;
        let reduce_device = self.reduce_on.clone().unwrap_or_else(|| device.clone());
        collective::register_peer::<B::InnerBackend>(
            global,
            self.settings.count,
            reduce_device.clone(),
            self.settings.nodes.as_ref(),
        )?;
        if let Some(token) = self.settings.start_token {
            let peers = self.settings.global_count;
            agreement::agree::<B::InnerBackend>(global, peers, &reduce_device, token)?;
        }
        self.model = self.to_own_device(self.model.clone());
        while let Ok(command) = commands.recv() {
            if self.watch.abandoned() {
                return Ok(());
            }
            match command {
                Command::Batch { epoch, step, lr } => self.train(epoch, step, lr)?,
                Command::Window { reply, reset } => {
                    let totals = self.window.read_totals();
                    if reset {
                        self.window.reset();
                    }
                    // Rank 0 went away: it is ending the run.
                    let _ = reply.send((self.rank, totals));
                }
                Command::Eval { split, reply } => {
                    let _ = reply.send((self.rank, self.eval(split)));
                }
                Command::Fingerprint(reply) => {
                    let _ = reply.send(weights_fingerprint(&self.model));
                }
                Command::SetModel(model) => self.model = self.to_own_device(model),
                Command::Agree(count) => {
                    agreement::any::<B::InnerBackend>(global, &reduce_device, &vec![false; count])?;
                }
                Command::Finish => {
                    return collective::finish_peer::<B::InnerBackend>(global);
                }
            }
        }
        Ok(())
    }

    fn train(&mut self, epoch: usize, step: usize, lr: Option<f64>) -> Result<(), String> {
        let batch = self.next_batch(epoch, step)?;
        let (own, all) = self.loader.step_items(step);
        let settings = &self.settings;
        let global = settings.first + self.rank;
        let scale = replica_weight(own, all, settings.global_count) / settings.accumulation as f64;
        let seed = batch_seed(settings.seed, epoch, step * settings.global_count + global);
        let device = self.loader.device().clone();
        let done = forward_backward::<B, M, TB>(
            &self.model,
            batch,
            &device,
            seed,
            scale,
            Some(settings.timeout),
        )?;
        self.window.update(&done.output);
        let grads = if settings.accumulation > 1 {
            self.accumulator.accumulate(&self.model, done.grads);
            match lr {
                Some(_) => self.accumulator.grads(),
                None => return Ok(()),
            }
        } else {
            done.grads
        };
        let Some(lr) = lr else { return Ok(()) };
        if self.watch.abandoned() {
            // Rank 0 gave the run up while this replica worked: a later run may own the
            // collective now.
            return Err("the run was given up".into());
        }
        let flat = flat::flatten::<B, M>(&self.model, grads, &device);
        let buffer = match &self.reduce_on {
            Some(reduce_device) => Tensor::from_data(flat.buffer.into_data(), reduce_device),
            None => flat.buffer,
        };
        let averaged = collective::mean::<B::InnerBackend>(global, buffer)
            .map_err(|e| format!("the gradient all-reduce failed: {e}"))?;
        let averaged = match &self.reduce_on {
            Some(_) => Tensor::from_data(averaged.into_data(), &device),
            None => averaged,
        };
        let grads = flat::unflatten::<B, M>(&self.model, averaged, &flat.flags);
        let model = self.model.clone();
        self.model = apply_gradients::<B, M, O>(
            &mut self.optimizer,
            model,
            grads,
            lr,
            self.settings.clipping,
        );
        Ok(())
    }

    /// `model` (rank 0's) on this replica's device: forked, or through the host when the
    /// devices differ (`parallel::host_move`).
    fn to_own_device(&self, model: M) -> M {
        let device = self.loader.device();
        match self.reduce_on {
            Some(_) => host_move::move_model(model, device),
            None => model.fork(device),
        }
    }

    /// The metric totals of the model on this replica's shard of `split`'s data.
    fn eval(&self, split: Split) -> Result<Totals, String> {
        let loader = match split {
            Split::Test => self.test.as_ref(),
            _ => self.valid.as_ref(),
        }
        .ok_or_else(|| format!("no {split} data"))?;
        let mut metrics =
            MetricAccumulator::<B::InnerBackend>::new().with_metrics(self.eval_metrics.clone());
        // A shard can be empty when the data has fewer batches than there are replicas.
        if loader.num_batches() > 0 {
            let model = self.model.valid();
            let batches = loader
                .iter(DataCursor::epoch_start(0))
                .map_err(|e| e.to_string())?;
            for batch in batches {
                let batch = batch.map_err(|e| e.to_string())?;
                metrics.update(&ValidStep::step(&model, batch));
            }
        }
        Ok(metrics.read_totals())
    }

    fn next_batch(&mut self, epoch: usize, step: usize) -> Result<TB, String> {
        let fresh = !matches!(&self.batches, Some((e, s, _)) if *e == epoch && *s == step);
        if fresh {
            let cursor = DataCursor { epoch, batch: step };
            let batches = self.loader.iter(cursor).map_err(|e| e.to_string())?;
            self.batches = Some((epoch, step, batches));
        }
        let (_, next, batches) = self.batches.as_mut().expect("made above");
        *next += 1;
        match batches.next() {
            Some(batch) => batch.map_err(|e| e.to_string()),
            None => Err(format!(
                "epoch {epoch} has no batch {step} in this replica's shard"
            )),
        }
    }
}
