//! The supervised trainer as a program of the engine loop: one batch per step (forward,
//! backward, accumulation, the optimizer step), epochs with their metrics and validation.

use std::sync::PoisonError;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;

use super::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer, BACKEND_RNG};
use crate::checkpoint::Snapshot;
use crate::config::ScheduleInterval;
use crate::data::{mix_seed, DataCursor};
use crate::engine::run_loop::{Engine, StepDone, StepProgram};
use crate::error::{Result, TrainerError};
use crate::metric::Split;
use crate::state::EpochSummary;
use crate::step::TrainStep;

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
        if self.engine.state.batch_in_epoch > 0 {
            // Resumed mid-epoch: the epoch's clock goes on from the checkpoint's.
            self.progress.epoch_started = Instant::now();
        }
        Ok(())
    }

    fn after_callbacks(&mut self) {
        if self.engine.control.take_keep_weights() {
            self.kept = Some(self.model().clone());
        }
        if self.engine.control.take_restore_kept_weights() {
            if let Some(kept) = self.kept.clone() {
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
        let loss_scale = 1.0 / accumulation as f64;
        let model = self.model();
        let output = {
            // Random ops (dropout) draw from a stream fixed by (seed, epoch, batch), so a
            // resumed run repeats them. burn's backend RNG is global to the process: the lock
            // keeps trainers on other threads from drawing from this step's stream.
            let _rng = BACKEND_RNG.lock().unwrap_or_else(PoisonError::into_inner);
            B::seed(
                &self.device,
                mix_seed(
                    mix_seed(self.engine.config.seed, epoch as u64),
                    self.engine.state.batch_in_epoch as u64,
                ),
            );
            TrainStep::step(model, batch)
        };
        let batch_size = output.batch_size;
        let loss = if accumulation > 1 {
            output.loss.clone().mul_scalar(loss_scale)
        } else {
            output.loss.clone()
        };
        let grads = GradientsParams::from_grads(loss.backward(), model);
        self.progress.window.update(&output.detach_inner());
        drop(output);
        self.engine.state.batch_in_epoch += 1;
        self.engine.state.samples_seen += batch_size as u64;
        self.progress.throughput.samples(batch_size as u64);
        self.progress.pending += 1;
        let last_batch = self.engine.state.batch_in_epoch == num_batches;
        // The lr this batch's optimizer step uses, before the schedule advances.
        let step_lr = self.engine.schedule.lr();
        let stepped = if accumulation > 1 {
            let model = self.model.as_ref().expect("model present between steps");
            self.accumulator.accumulate(model, grads);
            if self.progress.pending == accumulation || last_batch {
                let grads = self.accumulator.grads();
                self.optimizer_step(grads);
                true
            } else {
                false
            }
        } else {
            self.optimizer_step(grads);
            true
        };
        if stepped {
            self.progress.pending = 0;
            self.progress.throughput.step();
            if self
                .engine
                .state
                .global_step
                .is_multiple_of(self.engine.config.log_every)
            {
                let totals = self.progress.window.read_totals();
                self.progress.epoch_totals.add(&totals);
                self.progress.window.reset();
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
            let totals = self.progress.window.read_totals();
            self.progress.epoch_totals.add(&totals);
            self.progress.window.reset();
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
        Ok(())
    }
}
