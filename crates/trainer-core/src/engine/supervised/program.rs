//! The supervised trainer as a program of the engine loop: one batch per step (forward,
//! backward, accumulation, the optimizer step), epochs with their metrics and validation.

use std::time::Instant;

use burn::optim::GradientsAccumulator;
use burn::tensor::backend::AutodiffBackend;

use super::micro_step::{batch_seed, forward_backward, replica_weight};
use super::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
use crate::checkpoint::Snapshot;
use crate::config::ScheduleInterval;
use crate::data::DataCursor;
use crate::engine::run_loop::{Engine, StepDone, StepProgram};
use crate::error::{Result, TrainerError};
use crate::metric::Split;
use crate::state::EpochSummary;

/// The supervised trainer's batches, optimizer steps, epochs and validation, as the engine
/// loop drives them (`fit` runs [`run_loop`](crate::engine::run_loop) over it). Call `fit`, not
/// these.
impl<B, M, O, TB, VB> StepProgram for SupervisedTrainer<B, M, O, TB, VB>
where
    B: AutodiffBackend,
    M: SupervisedModel<B, TB, VB>,
    O: SupervisedOptimizer<M, B>,
    TB: Send + 'static,
    VB: Send + 'static,
{
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        SupervisedTrainer::snapshot(self)
    }

    fn can_snapshot(&self) -> bool {
        // The model is out of its slot only inside an optimizer step (a panic there leaves it
        // out: no snapshot of a half-stepped run).
        self.progress.pending == 0 && self.model.is_some()
    }

    fn begin(&mut self) -> Result<()> {
        if self.train.is_none() {
            return Err(TrainerError::MissingData {
                split: "train",
                builder_method: "train_data",
            });
        }
        // The batches of an earlier `fit` that ended early are not this cursor's.
        self.epoch_batches = None;
        self.start_replicas()?;
        if self.engine.state.batch_in_epoch > 0 {
            // Resumed mid-epoch: the epoch's clock goes on from the checkpoint's.
            self.progress.epoch_started = Instant::now();
        }
        Ok(())
    }

    fn agree_requests(&mut self, hook: crate::callback::Hook) -> Result<()> {
        self.agree_node_requests(hook)
    }

    fn after_callbacks(&mut self) {
        if self.engine.control.take_keep_weights() {
            self.kept = Some(self.model().clone());
        }
        if self.engine.control.take_restore_kept_weights() {
            if let Some(kept) = self.kept.clone() {
                if let Some(replicas) = &self.replicas {
                    // The other replicas must go on from the same weights.
                    if let Err(error) = replicas.set_model(&kept) {
                        log::error!("{error}");
                    }
                }
                self.model = Some(kept);
            }
        }
    }

    fn at_epoch_start(&self) -> bool {
        self.engine.state.batch_in_epoch == 0
    }

    fn epoch_done(&self) -> bool {
        // No batches at all is the data's error, which making the batches reports.
        let num_batches = self.num_batches();
        num_batches > 0 && self.engine.state.batch_in_epoch >= num_batches
    }

    fn begin_epoch(&mut self) -> Result<()> {
        self.progress = self.fresh_progress();
        self.accumulator = GradientsAccumulator::new();
        Ok(())
    }

    fn step(&mut self) -> Result<StepDone> {
        let epoch = self.engine.state.epoch;
        if self.epoch_batches.is_none() {
            let cursor = DataCursor {
                epoch,
                batch: self.engine.state.batch_in_epoch,
            };
            let loader = self.train.as_ref().ok_or(TrainerError::MissingData {
                split: "train",
                builder_method: "train_data",
            })?;
            self.epoch_batches = Some(loader.iter(cursor)?);
        }
        let batch = self
            .epoch_batches
            .as_mut()
            .and_then(Iterator::next)
            .unwrap_or_else(|| {
                Err(TrainerError::Data {
                    split: "train",
                    message: "the batches of the epoch ended early".into(),
                })
            })?;
        let num_batches = self.num_batches();
        let accumulation = self.engine.config.gradient_accumulation;
        let (first, replicas) = self.global_ranks();
        let step_in_epoch = self.engine.state.batch_in_epoch;
        let (own_items, all_items) = self
            .train
            .as_ref()
            .map_or((0, 0), |loader| loader.step_items(step_in_epoch));
        let loss_scale = replica_weight(own_items, all_items, replicas) / accumulation as f64;
        let last_batch = step_in_epoch + 1 == num_batches;
        let stepped = accumulation == 1 || self.progress.pending + 1 == accumulation || last_batch;
        // The lr this batch's optimizer step uses, before the schedule advances.
        let step_lr = self.engine.schedule.lr();
        if let Some(replicas) = &self.replicas {
            // The other replicas work on their batches while rank 0 works on its own.
            replicas.batch(epoch, step_in_epoch, stepped.then_some(step_lr))?;
        }
        let seed = batch_seed(
            self.engine.config.seed,
            epoch,
            step_in_epoch * replicas + first,
        );
        let rng_wait = self.replicas.is_some().then_some(self.collective_timeout);
        let done = forward_backward::<B, M, TB>(
            self.model(),
            batch,
            &self.device,
            seed,
            loss_scale,
            rng_wait,
        )
        .map_err(|message| TrainerError::Replica {
            rank: 0,
            replicas,
            message,
        })?;
        self.progress.window.update(&done.output);
        let items = if replicas > 1 {
            all_items
        } else {
            done.batch_size
        };
        self.engine.state.batch_in_epoch += 1;
        self.engine.state.samples_seen += items as u64;
        self.progress.throughput.samples(items as u64);
        self.progress.pending += 1;
        if accumulation > 1 {
            let model = self.model.as_ref().expect("model present between steps");
            self.accumulator.accumulate(model, done.grads);
            if stepped {
                let grads = self.accumulator.grads();
                self.optimizer_step(grads)?;
            }
        } else {
            self.optimizer_step(done.grads)?;
        }
        if stepped {
            self.progress.pending = 0;
            self.progress.throughput.step();
            if self
                .engine
                .state
                .global_step
                .is_multiple_of(self.engine.config.log_every)
            {
                let totals = self.read_window()?;
                self.progress.epoch_totals.add(&totals);
                let mut values = self.progress.window.values(&totals);
                values.insert("lr".into(), step_lr);
                self.add_pace(&mut values);
                self.engine
                    .latest
                    .set(Split::Train, self.engine.state.global_step, values);
            }
        }
        Ok(StepDone {
            optimizer_step: stepped,
            ..StepDone::default()
        })
    }

    fn after_step(&mut self) -> Result<()> {
        let step = self.engine.state.global_step;
        if self
            .engine
            .config
            .validation
            .is_some_and(|f| f.fires_at_step(step))
            && self.valid.is_some()
        {
            self.run_eval(Split::Valid)?;
        }
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<()> {
        self.epoch_batches = None;
        if !self.progress.window.is_empty() {
            let totals = self.read_window()?;
            self.progress.epoch_totals.add(&totals);
            let values = self.progress.window.values(&totals);
            self.engine
                .latest
                .set(Split::Train, self.engine.state.global_step, values);
        }
        self.engine.state.epoch += 1;
        self.engine.state.batch_in_epoch = 0;
        if self.engine.config.schedule_interval == ScheduleInterval::Epoch {
            self.advance_schedule();
        }
        let valid = if self
            .engine
            .config
            .validation
            .is_some_and(|f| f.fires_at_epoch_end(self.engine.state.epoch))
            && self.valid.is_some()
        {
            Some(self.run_eval(Split::Valid)?)
        } else {
            None
        };
        self.engine.state.schedule = Some(self.engine.schedule.state());
        self.engine.state.history.push(EpochSummary {
            epoch: self.engine.state.epoch,
            global_step: self.engine.state.global_step,
            learning_rate: self.engine.schedule.lr(),
            train: self.progress.window.values(&self.progress.epoch_totals),
            valid,
            seconds: self.progress.epoch_seconds(),
        });
        self.progress = self.fresh_progress();
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // Ends the loader thread of an epoch the run stopped in.
        self.epoch_batches = None;
        match self.replicas.take() {
            Some(replicas) => {
                self.gradient_sync_time = replicas.reducing_time();
                replicas.finish()
            }
            None => Ok(()),
        }
    }
}
