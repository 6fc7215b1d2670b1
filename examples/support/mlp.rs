//! A multilayer perceptron classifier, initialised from a seed on the host so that every backend
//! starts from the same weights.

use burn::module::Module;
use burn::nn::{loss::CrossEntropyLossConfig, Dropout, DropoutConfig, Linear, Relu};
use burn::tensor::{backend::AutodiffBackend, backend::Backend, Tensor};
use trainer_core::init::seeded_linears;
use trainer_core::{StepOutput, TrainStep, ValidStep};

use super::digits::DigitsBatch;

/// The shape of an [`Mlp`].
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    /// Input features.
    pub inputs: usize,
    /// Hidden layer widths, in order.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Dropout probability after each hidden layer.
    pub dropout: f64,
}

impl MlpConfig {
    /// An MLP `inputs → hidden… → classes` without dropout.
    pub fn new(inputs: usize, hidden: Vec<usize>, classes: usize) -> Self {
        Self {
            inputs,
            hidden,
            classes,
            dropout: 0.0,
        }
    }

    /// Sets the dropout probability.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Makes the model on `device`. Weights and biases are drawn from `U(-k, k)`,
    /// `k = 1/sqrt(fan_in)` (PyTorch's and burn's default for linear layers), by a ChaCha8 stream
    /// seeded with `seed` on the host: the same seed gives bit-identical weights on every backend.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Mlp<B> {
        let mut widths = vec![self.inputs];
        widths.extend(&self.hidden);
        widths.push(self.classes);
        let layers = seeded_linears(&widths, seed, device);
        Mlp {
            layers,
            activation: Relu::new(),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// A multilayer perceptron: linear layers with ReLU and dropout between them.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    layers: Vec<Linear<B>>,
    activation: Relu,
    dropout: Dropout,
}

impl<B: Backend> Mlp<B> {
    /// Logits `[batch, classes]` for inputs `[batch, inputs]`.
    pub fn forward(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        let mut x = input;
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if index < last {
                x = self.dropout.forward(self.activation.forward(x));
            }
        }
        x
    }

    /// The cross-entropy loss and logits of a batch.
    pub fn classify(&self, batch: DigitsBatch<B>) -> StepOutput<B> {
        let logits = self.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        StepOutput::classification(loss, logits, batch.targets)
    }

    /// Every parameter as little-endian `f32` bytes, in record order (each layer's weight, then
    /// its bias): what a weights hash is taken over.
    pub fn parameter_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for layer in &self.layers {
            let mut tensors = vec![layer.weight.val().into_data()];
            if let Some(bias) = &layer.bias {
                tensors.push(bias.val().into_data());
            }
            for data in tensors {
                let values = data.convert::<f32>().into_vec::<f32>().unwrap_or_default();
                bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            }
        }
        bytes
    }
}

impl<B: AutodiffBackend> TrainStep<B, DigitsBatch<B>> for Mlp<B> {
    fn step(&self, batch: DigitsBatch<B>) -> StepOutput<B> {
        self.classify(batch)
    }
}

impl<B: Backend> ValidStep<B, DigitsBatch<B>> for Mlp<B> {
    fn step(&self, batch: DigitsBatch<B>) -> StepOutput<B> {
        self.classify(batch)
    }
}

/// A supervised trainer of the [`Mlp`] on digits batches with Adam.
pub type DigitsTrainer<B> = trainer::prelude::SupervisedTrainer<
    B,
    Mlp<B>,
    burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, Mlp<B>, B>,
    DigitsBatch<B>,
    DigitsBatch<<B as AutodiffBackend>::InnerBackend>,
>;
