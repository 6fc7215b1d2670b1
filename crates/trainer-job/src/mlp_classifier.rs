//! `mlp-classifier`: an MLP over the numeric feature columns of a table and an integer label.
//!
//! One file past 400 lines: the built-in trainer is written as a user's would be (hyperparams,
//! model, hooks, mock batches), and reads as one example.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use burn::module::Module;
use burn::nn::{loss::CrossEntropyLossConfig, Linear, Relu};
use burn::optim::{adaptor::OptimizerAdaptor, Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Int, Tensor, TensorData,
};
use serde::Deserialize;
use trainer_core::init::seeded_linears;
use trainer_core::metric::names;

use crate::error::HookResult;
use crate::hooks::{mock_value, JobContext, SampleContext, StepContext, StepHooks, StepResult};
use crate::spec::JobSpec;
use crate::state_dict::StateDict;

/// The registry name.
pub const NAME: &str = "mlp-classifier";

/// The hyperparams `mlp-classifier` reads (unknown ones are errors).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpHyperparams {
    /// The integer label column (default `"label"`); the other projected columns are features.
    #[serde(default = "default_label")]
    pub label_column: String,
    /// Hidden layer widths (default `[64]`).
    #[serde(default = "default_hidden")]
    pub hidden_sizes: Vec<usize>,
    /// Adam's learning rate (read by the runtime, default 0.001).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// A learning-rate schedule (read by the runtime).
    #[serde(default)]
    pub lr_schedule: Option<serde_json::Value>,
    /// The step metric a plateau schedule watches (read by the runtime, default `"loss"`).
    #[serde(default)]
    pub lr_schedule_monitor: Option<serde_json::Value>,
    /// Classes; by default one more than the largest label in the data (2 in mock runs).
    #[serde(default)]
    pub num_classes: Option<usize>,
}

/// The most units in one layer (inputs and hidden layers).
pub const MAX_WIDTH: usize = 1 << 16;
/// The most hidden layers.
pub const MAX_LAYERS: usize = 64;
/// The most classes (the output layer's width).
pub const MAX_CLASSES: usize = 1 << 20;

fn default_label() -> String {
    "label".into()
}

fn default_hidden() -> Vec<usize> {
    vec![64]
}

/// The network: linear layers with ReLU between them.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    layers: Vec<Linear<B>>,
    activation: Relu,
}

impl<B: Backend> Mlp<B> {
    /// `inputs` → `hidden`... → `classes`, with burn's default linear init (uniform in
    /// ±1/√fan_in) drawn from a host generator seeded with `seed`: the backend's generator is
    /// global to the process, so another trainer in the process could change what it draws.
    pub fn new(
        inputs: usize,
        hidden: &[usize],
        classes: usize,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let widths: Vec<usize> = std::iter::once(inputs)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(classes))
            .collect();
        let layers = seeded_linears(&widths, seed, device);
        Self {
            layers,
            activation: Relu::new(),
        }
    }

    /// Logits `[batch, classes]`.
    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.activation.forward(x);
            }
        }
        x
    }
}

/// A batch on the device.
#[derive(Debug, Clone)]
pub struct MlpBatch<B: Backend> {
    features: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
}

/// The model, its optimizer, and the last batch (for samples).
pub struct MlpState<B: AutodiffBackend> {
    model: Mlp<B>,
    optimizer: OptimizerAdaptor<Adam, Mlp<B>, B>,
    last: Option<MlpBatch<B>>,
}

/// The `mlp-classifier` step hooks.
#[derive(Debug, Clone)]
pub struct MlpClassifier {
    params: MlpHyperparams,
    features: Vec<String>,
    classes: usize,
}

impl MlpClassifier {
    /// Reads the hyperparams of `spec`.
    pub fn from_spec(spec: &JobSpec) -> HookResult<Self> {
        let params: MlpHyperparams = serde_json::from_value(spec.hyperparams.clone())?;
        if params.hidden_sizes.contains(&0) {
            return Err("hidden_sizes: a layer needs at least one unit".into());
        }
        if let Some(width) = params.hidden_sizes.iter().find(|&&w| w > MAX_WIDTH) {
            return Err(
                format!("hidden_sizes: {width} units, at most {MAX_WIDTH} per layer").into(),
            );
        }
        if params.hidden_sizes.len() > MAX_LAYERS {
            return Err(format!(
                "hidden_sizes: {} layers, at most {MAX_LAYERS}",
                params.hidden_sizes.len()
            )
            .into());
        }
        if params.num_classes.is_some_and(|n| n < 2) {
            return Err("num_classes: a classifier needs at least 2 classes".into());
        }
        if let Some(n) = params.num_classes.filter(|&n| n > MAX_CLASSES) {
            return Err(format!("num_classes: {n}, at most {MAX_CLASSES}").into());
        }
        Ok(Self {
            params,
            features: Vec::new(),
            classes: 0,
        })
    }

    fn label(&self) -> &str {
        &self.params.label_column
    }
}

/// Column `name` of `batch` as `Float32` values.
fn floats(batch: &RecordBatch, name: &str) -> HookResult<Float32Array> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| format!("the batch has no column {name:?}"))?;
    if column.null_count() > 0 {
        return Err(format!("column {name:?} has {} null values", column.null_count()).into());
    }
    let cast = arrow_cast::cast(column, &DataType::Float32)?;
    Ok(cast
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or("cast to Float32")?
        .clone())
}

/// Column `name` as `Int64` values.
fn integers(column: &ArrayRef, name: &str) -> HookResult<Int64Array> {
    if column.null_count() > 0 {
        return Err(format!("column {name:?} has {} null values", column.null_count()).into());
    }
    if !column.data_type().is_integer() {
        return Err(format!(
            "the label column {name:?} has type {}; it must be an integer column",
            column.data_type()
        )
        .into());
    }
    let cast = arrow_cast::cast(column, &DataType::Int64)?;
    Ok(cast
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("cast to Int64")?
        .clone())
}

impl<B: AutodiffBackend> StepHooks<B> for MlpClassifier {
    type State = MlpState<B>;
    type Batch = MlpBatch<B>;

    fn setup(&mut self, ctx: &JobContext<'_>) -> HookResult<()> {
        let names: Vec<String> = ctx
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if !names.iter().any(|n| n == self.label()) {
            return Err(format!("the label column {:?} is not among the columns {}; set hyperparams.label_column or dataset.columns", self.label(), names.join(", ")).into());
        }
        self.features = names.into_iter().filter(|n| n != self.label()).collect();
        if self.features.is_empty() {
            return Err("no feature columns: the projected columns hold only the label".into());
        }
        // The feed delivers any Arrow column; this trainer reads numbers only, so a text or list
        // column among its features is refused here, by name, rather than cast at each batch.
        // (The label's type is checked where it is read.)
        for field in ctx.schema.fields() {
            let data_type = field.data_type();
            let number = data_type.is_integer()
                || data_type.is_floating()
                || *data_type == DataType::Boolean;
            if field.name() != self.label() && !number {
                return Err(format!(
                    "column {:?} has type {data_type}; mlp-classifier reads numbers and \
                     booleans as features (leave the column out with dataset.columns)",
                    field.name()
                )
                .into());
            }
        }
        self.classes = match (self.params.num_classes, ctx.columns) {
            (Some(n), _) => n,
            (None, None) => 2,
            (None, Some(reader)) => {
                let mut max = -1i64;
                for array in reader.read_column(self.label())? {
                    let labels = integers(&array, self.label())?;
                    if let Some(low) = labels.values().iter().copied().find(|v| *v < 0) {
                        return Err(format!(
                            "the label column {:?} holds {low}; labels are 0, 1, 2, ...",
                            self.label()
                        )
                        .into());
                    }
                    max = max.max(labels.values().iter().copied().max().unwrap_or(-1));
                }
                if max >= MAX_CLASSES as i64 {
                    return Err(format!(
                        "the label column {:?} holds {max}: at most {MAX_CLASSES} classes (labels 0..{})",
                        self.label(),
                        MAX_CLASSES - 1
                    )
                    .into());
                }
                (max + 1).max(2) as usize
            }
        };
        if self.features.len() > MAX_WIDTH {
            return Err(format!(
                "{} feature columns: at most {MAX_WIDTH}",
                self.features.len()
            )
            .into());
        }
        Ok(())
    }

    fn configure(&mut self, ctx: &JobContext<'_>, device: &B::Device) -> HookResult<Self::State> {
        let model = Mlp::new(
            self.features.len(),
            &self.params.hidden_sizes,
            self.classes,
            ctx.spec.seed,
            device,
        );
        Ok(MlpState {
            model,
            optimizer: AdamConfig::new().init(),
            last: None,
        })
    }

    fn metric_names(&self) -> Vec<String> {
        vec![names::LOSS.into(), names::ACCURACY.into()]
    }

    fn prepare_batch(
        &mut self,
        _state: &mut Self::State,
        batch: &RecordBatch,
        device: &B::Device,
    ) -> HookResult<Self::Batch> {
        let rows = batch.num_rows();
        let width = self.features.len();
        let mut values = vec![0f32; rows * width];
        for (c, name) in self.features.iter().enumerate() {
            for (r, v) in floats(batch, name)?.values().iter().enumerate() {
                values[r * width + c] = *v;
            }
        }
        let column = batch
            .column_by_name(self.label())
            .ok_or_else(|| format!("the batch has no column {:?}", self.label()))?;
        let labels = integers(column, self.label())?;
        if let Some(bad) = labels
            .values()
            .iter()
            .find(|&&v| v < 0 || v as usize >= self.classes)
        {
            return Err(format!(
                "label {bad} is outside 0..{} (set hyperparams.num_classes)",
                self.classes
            )
            .into());
        }
        Ok(MlpBatch {
            features: Tensor::from_data(TensorData::new(values, [rows, width]), device),
            labels: Tensor::from_data(TensorData::new(labels.values().to_vec(), [rows]), device),
        })
    }

    fn train_step(
        &mut self,
        state: &mut Self::State,
        batch: Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<B>> {
        let logits = state.model.forward(batch.features.clone());
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        let accuracy = logits
            .detach()
            .argmax(1)
            .reshape([-1])
            .equal(batch.labels.clone())
            .float()
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &state.model);
        // On several nodes (the spec's `distributed`), every node applies the same average.
        let grads = ctx.average_gradients::<B, _>(&state.model, grads)?;
        state.model = state
            .optimizer
            .step(ctx.learning_rate, state.model.clone(), grads);
        state.last = Some(batch);
        Ok(StepResult::new()
            .metric(names::LOSS, loss.detach())
            .metric(names::ACCURACY, accuracy))
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

    /// Writes `step-NNNNNN.json`: predicted and true labels of up to 16 rows of the last batch.
    fn sample(
        &mut self,
        state: &mut Self::State,
        ctx: &SampleContext<'_>,
    ) -> HookResult<Option<PathBuf>> {
        let Some(batch) = &state.last else {
            return Ok(None);
        };
        let rows = batch.labels.dims()[0].min(16);
        let features = batch.features.clone().inner().narrow(0, 0, rows);
        let predicted = state
            .model
            .valid()
            .forward(features)
            .argmax(1)
            .reshape([-1])
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()?;
        let labels = batch
            .labels
            .clone()
            .inner()
            .narrow(0, 0, rows)
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()?;
        let file = ctx.dir.join(format!("step-{:06}.json", ctx.step));
        let json = serde_json::json!({"step": ctx.step, "predicted": predicted, "labels": labels});
        std::fs::write(&file, serde_json::to_vec_pretty(&json)?)?;
        Ok(Some(file))
    }

    /// Features from the seed and index; labels cycle through the classes.
    fn mock_batch(&mut self, ctx: &JobContext<'_>, index: usize) -> HookResult<RecordBatch> {
        let rows = ctx.spec.dataset.batch_size;
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (c, field) in ctx.schema.fields().iter().enumerate() {
            if field.name() == self.label() {
                fields.push(Field::new(field.name(), DataType::Int64, false));
                columns.push(Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|r| ((r + index) % self.classes) as i64),
                )));
            } else {
                fields.push(Field::new(field.name(), DataType::Float32, false));
                columns.push(Arc::new(Float32Array::from_iter_values(
                    (0..rows).map(|r| mock_value(ctx.spec.seed, index, r, c)),
                )));
            }
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

use burn::module::AutodiffModule;
