//! A tiny regression model and data for the engine tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

pub mod dropout_net;
pub mod payload;

use burn::data::{dataloader::batcher::Batcher, dataset::InMemDataset};
use burn::module::Module;
use burn::nn::{
    loss::{MseLoss, Reduction},
    Linear, LinearConfig,
};
use burn::optim::{adaptor::OptimizerAdaptor, Sgd, SgdConfig};
use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Tensor, TensorData,
};
use trainer_core::callback::{Callback, Context, Hook};
use trainer_core::prelude::*;

pub type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;
pub type Inner = burn_ndarray::NdArray<f32>;

#[derive(Module, Debug)]
pub struct Regressor<B: Backend> {
    pub linear: Linear<B>,
}

#[derive(Clone, Debug)]
pub struct Batch<B: Backend> {
    pub x: Tensor<B, 2>,
    pub y: Tensor<B, 2>,
}

impl<B: Backend> Regressor<B> {
    pub fn new(device: &B::Device) -> Self {
        let mut linear = LinearConfig::new(2, 1).init(device);
        linear.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.1f32, -0.2], [2, 1]),
            device,
        ));
        linear.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.0f32], [1]),
            device,
        )));
        Self { linear }
    }

    fn output(&self, batch: Batch<B>) -> StepOutput<B> {
        let n = batch.x.dims()[0];
        let prediction = self.linear.forward(batch.x);
        StepOutput::loss(
            MseLoss::new().forward(prediction, batch.y, Reduction::Mean),
            n,
        )
    }

    pub fn weights(&self) -> Vec<f32> {
        let mut w = self
            .linear
            .weight
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        w.extend(
            self.linear
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        );
        w
    }
}

impl<B: AutodiffBackend> TrainStep<B, Batch<B>> for Regressor<B> {
    fn step(&self, batch: Batch<B>) -> StepOutput<B> {
        self.output(batch)
    }
}

impl<B: Backend> ValidStep<B, Batch<B>> for Regressor<B> {
    fn step(&self, batch: Batch<B>) -> StepOutput<B> {
        self.output(batch)
    }
}

/// Items `(x1, x2, y)` with `y = 2 x1 - x2 + 0.5`.
pub fn items(n: usize) -> Vec<[f32; 3]> {
    (0..n)
        .map(|i| {
            let x1 = (i as f32 * 0.37).sin();
            let x2 = (i as f32 * 0.11).cos();
            [x1, x2, 2.0 * x1 - x2 + 0.5]
        })
        .collect()
}

#[derive(Clone, Default)]
pub struct RowBatcher;

impl<B: Backend> Batcher<B, [f32; 3], Batch<B>> for RowBatcher {
    fn batch(&self, items: Vec<[f32; 3]>, device: &B::Device) -> Batch<B> {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|r| [r[0], r[1]]).collect();
        let y: Vec<f32> = items.iter().map(|r| r[2]).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, 2]), device),
            y: Tensor::from_data(TensorData::new(y, [n, 1]), device),
        }
    }
}

pub type Optim = OptimizerAdaptor<Sgd<Inner>, Regressor<B>, B>;

pub fn trainer(
    config: TrainerConfig,
    n_train: usize,
    callbacks: Vec<Box<dyn Callback>>,
) -> SupervisedTrainer<B, Regressor<B>, Optim, Batch<B>, Batch<Inner>> {
    let device = Default::default();
    let mut builder = SupervisedTrainer::builder(
        Regressor::<B>::new(&device),
        SgdConfig::new().init(),
        config,
        device,
    )
    .train_data(InMemDataset::new(items(n_train)), RowBatcher)
    .valid_data(InMemDataset::new(items(6)), RowBatcher)
    .test_data(InMemDataset::new(items(5)), RowBatcher);
    for callback in callbacks {
        builder = builder.boxed_callback(callback);
    }
    builder.build().unwrap()
}

/// Records every hook it sees, with the global step at that moment.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<(Hook, usize)>>>,
}

impl Recorder {
    pub fn hooks(&self) -> Vec<Hook> {
        self.seen.lock().unwrap().iter().map(|(h, _)| *h).collect()
    }
    fn push(&self, hook: Hook, ctx: &Context<'_>) {
        self.seen
            .lock()
            .unwrap()
            .push((hook, ctx.state.global_step));
    }
}

impl Callback for Recorder {
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::TrainBegin, ctx);
        Ok(())
    }
    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::TrainEnd, ctx);
        Ok(())
    }
    fn on_epoch_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::EpochBegin, ctx);
        Ok(())
    }
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::EpochEnd, ctx);
        Ok(())
    }
    fn on_batch_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::BatchBegin, ctx);
        Ok(())
    }
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::BatchEnd, ctx);
        Ok(())
    }
    fn on_validation_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::ValidationBegin, ctx);
        Ok(())
    }
    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::ValidationEnd, ctx);
        Ok(())
    }
    fn on_test_begin(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::TestBegin, ctx);
        Ok(())
    }
    fn on_test_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::TestEnd, ctx);
        Ok(())
    }
    fn on_checkpoint(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.push(Hook::Checkpoint, ctx);
        Ok(())
    }
}
