//! A small regression net with dropout and Adam, for the resume tests.

use std::sync::{Arc, Mutex};

use burn::data::dataset::InMemDataset;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{
    loss::{MseLoss, Reduction},
    Dropout, DropoutConfig, Linear, LinearConfig, Relu,
};
use burn::optim::{adaptor::OptimizerAdaptor, Adam, AdamConfig};
use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Tensor, TensorData,
};
use trainer_core::callback::{Callback, Context};
use trainer_core::prelude::*;

use super::{items, Batch, Inner, RowBatcher, B};

#[derive(Module, Debug)]
pub struct DropoutNet<B: Backend> {
    pub hidden: Linear<B>,
    pub dropout: Dropout,
    pub activation: Relu,
    pub out: Linear<B>,
}

/// A linear layer with weights from a fixed host formula (no backend RNG: tests run in parallel).
fn linear<B: Backend>(d_in: usize, d_out: usize, salt: f32, device: &B::Device) -> Linear<B> {
    let mut layer = LinearConfig::new(d_in, d_out).init(device);
    let w: Vec<f32> = (0..d_in * d_out)
        .map(|i| ((i as f32 + salt) * 0.731).sin() * 0.5)
        .collect();
    let b: Vec<f32> = (0..d_out)
        .map(|i| ((i as f32 + salt) * 0.37).cos() * 0.1)
        .collect();
    layer.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device));
    layer.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(b, [d_out]),
        device,
    )));
    layer
}

impl<B: Backend> DropoutNet<B> {
    /// `salt` changes the initial weights, to show that a resume replaces them.
    pub fn new(hidden: usize, salt: f32, device: &B::Device) -> Self {
        Self {
            hidden: linear(2, hidden, salt, device),
            dropout: DropoutConfig::new(0.3).init(),
            activation: Relu::new(),
            out: linear(hidden, 1, salt + 100.0, device),
        }
    }

    fn output(&self, batch: Batch<B>) -> StepOutput<B> {
        let n = batch.x.dims()[0];
        let h = self
            .dropout
            .forward(self.activation.forward(self.hidden.forward(batch.x)));
        let loss = MseLoss::new().forward(self.out.forward(h), batch.y, Reduction::Mean);
        StepOutput::loss(loss, n)
    }
}

thread_local! {
    /// Training steps left before the net's step panics (tests of panic containment; training
    /// runs on the test's own thread).
    static STEPS_BEFORE_PANIC: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Makes the net's training step panic after `steps` more steps on this thread.
#[allow(dead_code)]
pub fn panic_in_step_after(steps: usize) {
    STEPS_BEFORE_PANIC.with(|left| left.set(Some(steps)));
}

impl<B: AutodiffBackend> TrainStep<B, Batch<B>> for DropoutNet<B> {
    fn step(&self, batch: Batch<B>) -> StepOutput<B> {
        STEPS_BEFORE_PANIC.with(|left| match left.get() {
            Some(0) => {
                left.set(None);
                panic!("the user's step panicked");
            }
            Some(n) => left.set(Some(n - 1)),
            None => {}
        });
        self.output(batch)
    }
}

impl<B: Backend> ValidStep<B, Batch<B>> for DropoutNet<B> {
    fn step(&self, batch: Batch<B>) -> StepOutput<B> {
        self.output(batch)
    }
}

pub type AdamOptim = OptimizerAdaptor<Adam, DropoutNet<B>, B>;
pub type NetTrainer = SupervisedTrainer<B, DropoutNet<B>, AdamOptim, Batch<B>, Batch<Inner>>;

/// A trainer of the net on 100 items (13 batches of 8 per epoch, the last one 4) with Adam and
/// a step schedule.
pub fn net_trainer(
    config: TrainerConfig,
    salt: f32,
    callbacks: Vec<Box<dyn Callback>>,
) -> NetTrainer {
    wide_net_trainer(config, 16, salt, callbacks)
}

/// [`net_trainer`] with `hidden` units (the net's tensors hold `hidden` elements and more).
pub fn wide_net_trainer(
    config: TrainerConfig,
    hidden: usize,
    salt: f32,
    callbacks: Vec<Box<dyn Callback>>,
) -> NetTrainer {
    let device = Default::default();
    let mut builder = SupervisedTrainer::builder(
        DropoutNet::<B>::new(hidden, salt, &device),
        AdamConfig::new().init(),
        config,
        device,
    )
    .train_data(InMemDataset::new(items(100)), RowBatcher)
    .valid_data(InMemDataset::new(items(20)), RowBatcher)
    .boxed_schedule(step_lr().build(0.01).unwrap());
    for callback in callbacks {
        builder = builder.boxed_callback(callback);
    }
    builder.build().unwrap()
}

fn step_lr() -> trainer_core::schedule::ScheduleConfig {
    serde_json::from_value(
        serde_json::json!({"scheduler": "StepLR", "params": {"step_size": 10, "gamma": 0.5}}),
    )
    .unwrap()
}

/// Loads the checkpoint at `path` into `t`, which must refuse it and keep its weights and step;
/// returns the error.
pub fn refused_load(t: &mut NetTrainer, path: &std::path::Path) -> String {
    let before = parameter_bits(t.model());
    let error = t
        .load_checkpoint(path)
        .expect_err("a bad checkpoint was accepted")
        .to_string();
    assert!(
        parameter_bits(t.model()) == before,
        "a failed load changed the model"
    );
    assert_eq!(t.state().global_step, 0, "a failed load changed the state");
    error
}

/// Every float parameter's bytes, in visiting order.
pub fn parameter_bits<B: Backend, M: Module<B>>(module: &M) -> Vec<u32> {
    struct Bits(Vec<u32>);
    impl<B: Backend> ModuleVisitor<B> for Bits {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.extend(
                param
                    .val()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits()),
            );
        }
    }
    let mut bits = Bits(Vec::new());
    module.visit(&mut bits);
    bits.0
}

/// Records the training loss of every optimizer step (run with `log_every` 1).
#[derive(Clone, Default)]
pub struct LossLog(pub Arc<Mutex<Vec<(usize, u64)>>>);

impl LossLog {
    pub fn losses(&self) -> Vec<(usize, u64)> {
        self.0.lock().unwrap().clone()
    }
}

impl Callback for LossLog {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        let step = ctx.state.global_step;
        if ctx.metrics.step_of(Split::Train) == Some(step) {
            let loss = ctx.metrics.train().unwrap()["loss"];
            let mut log = self.0.lock().unwrap();
            if log.last().is_none_or(|(s, _)| *s < step) {
                log.push((step, loss.to_bits()));
            }
        }
        Ok(())
    }
}

/// Stops the run after optimizer step `at`.
pub struct StopAt(pub usize);

impl Callback for StopAt {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        if ctx.state.global_step == self.0 {
            ctx.control.stop(format!("interrupted at step {}", self.0));
        }
        Ok(())
    }
}
