//! A job runner with a trainer of your own: `softmax-regression` (one linear layer over the
//! feature columns) registered beside the built-in `mlp-classifier`, behind the same flags and
//! environment as `trainer run`.
//!
//! `cargo run --example job_runner -- --spec examples/job/spec.json --trainer softmax-regression --run-dir runs/softmax`

use std::process::ExitCode;

use burn::nn::{loss::CrossEntropyLossConfig, Linear, LinearConfig};
use burn::optim::{adaptor::OptimizerAdaptor, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::{backend::AutodiffBackend, Int, Tensor, TensorData};
use clap::Parser;
use trainer::job::cli::{run, RunCli};
use trainer::job::{
    HookResult, JobContext, Plugins, RecordBatch, Registry, StateDict, StepContext, StepHooks,
    StepResult,
};

/// Softmax regression with SGD; the label column is `label`, every other column a feature.
struct SoftmaxRegression {
    features: Vec<String>,
}

struct State<B: AutodiffBackend> {
    model: Linear<B>,
    optimizer: OptimizerAdaptor<Sgd<B::InnerBackend>, Linear<B>, B>,
}

impl<B: AutodiffBackend> StepHooks<B> for SoftmaxRegression {
    type State = State<B>;
    type Batch = (Tensor<B, 2>, Tensor<B, 1, Int>);

    fn setup(&mut self, ctx: &JobContext<'_>) -> HookResult<()> {
        self.features = ctx
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "label")
            .collect();
        Ok(())
    }

    fn configure(&mut self, _ctx: &JobContext<'_>, device: &B::Device) -> HookResult<Self::State> {
        Ok(State {
            model: LinearConfig::new(self.features.len(), 10).init(device),
            optimizer: SgdConfig::new().init(),
        })
    }

    fn metric_names(&self) -> Vec<String> {
        vec!["loss".into()]
    }

    fn prepare_batch(
        &mut self,
        _state: &mut Self::State,
        batch: &RecordBatch,
        device: &B::Device,
    ) -> HookResult<Self::Batch> {
        use arrow_array::{
            cast::AsArray,
            types::{Float32Type, Int64Type},
        };
        let rows = batch.num_rows();
        let mut x = vec![0f32; rows * self.features.len()];
        for (c, name) in self.features.iter().enumerate() {
            let column = batch
                .column_by_name(name)
                .ok_or("missing feature")?
                .as_primitive_opt::<Float32Type>()
                .ok_or("features must be Float32")?;
            for (r, v) in column.values().iter().enumerate() {
                x[r * self.features.len() + c] = *v;
            }
        }
        let labels = batch
            .column_by_name("label")
            .ok_or("missing label")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("label must be Int64")?;
        Ok((
            Tensor::from_data(TensorData::new(x, [rows, self.features.len()]), device),
            Tensor::from_data(TensorData::new(labels.values().to_vec(), [rows]), device),
        ))
    }

    fn train_step(
        &mut self,
        state: &mut Self::State,
        (x, y): Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<B>> {
        let logits = state.model.forward(x);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, y);
        let grads = GradientsParams::from_grads(loss.backward(), &state.model);
        state.model = state
            .optimizer
            .step(ctx.learning_rate, state.model.clone(), grads);
        Ok(StepResult::new().metric("loss", loss.detach()))
    }

    fn state_dict(&self, state: &Self::State) -> HookResult<StateDict> {
        let mut dict = StateDict::new();
        dict.put_module::<B, _>("model", &state.model)?;
        dict.put_record::<B, _>("optimizer", state.optimizer.to_record())?;
        Ok(dict)
    }

    fn load_state_dict(
        &mut self,
        state: &mut Self::State,
        dict: StateDict,
        device: &B::Device,
    ) -> HookResult<()> {
        // Both are checked against each other before either replaces the state.
        let model = dict.load_module::<B, _>("model", state.model.clone(), device)?;
        state.optimizer =
            dict.load_optimizer::<B, _, _>("optimizer", state.optimizer.clone(), &model, device)?;
        state.model = model;
        Ok(())
    }
}

struct MyTrainers;

impl Plugins for MyTrainers {
    fn register<B: AutodiffBackend>(registry: &mut Registry<B>) {
        registry.register("softmax-regression", |_spec| {
            Ok(SoftmaxRegression {
                features: Vec::new(),
            })
        });
    }
}

fn main() -> ExitCode {
    run::<MyTrainers>(&RunCli::parse().args)
}
