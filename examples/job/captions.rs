//! A job whose trainer reads a text column and writes a weight artifact per checkpoint.
//!
//! `caption-classifier` hashes the words of a `caption` string column into 64 buckets (a bag of
//! words) and trains one linear layer with PyTorch's AdamW and a warmup → cosine schedule
//! (`trainer::job::helpers`). At each checkpoint it writes `classifier.safetensors` (its
//! weights, `weight` as `[64, classes]` and `bias`) and `vocabulary.json` into the checkpoint's
//! artifacts folder; on resume it reads the safetensors file back and checks it against the
//! restored weights. The program writes its data (captions of three kinds of animal) and a
//! spec into the run folder, runs the job on ndarray with uploads into `RUN/uploaded`, and
//! prints a JSON summary.
//!
//! `cargo run --example captions [-- RUN_DIR [MAX_STEPS]]` (default `runs/captions`, 60 steps;
//! run it again with more steps and the job resumes from its last checkpoint)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use burn::nn::{loss::CrossEntropyLossConfig, Linear, LinearConfig};
use burn::optim::{adaptor::OptimizerAdaptor, AdamW, GradientsParams, Optimizer};
use burn::tensor::{backend::AutodiffBackend, Int, Tensor, TensorData};
use trainer::job::helpers::{default_adamw_bundle, seed_everything};
use trainer::job::{
    run_job, CancelToken, CheckpointContext, HookResult, JobContext, JobPaths, JobSpec,
    ResolvedJob, ResumeContext, StateDict, StepContext, StepHooks, StepResult,
};

trainer::program_allocator!();

type B = burn::backend::Autodiff<burn_ndarray::NdArray<f32>>;

/// Hash buckets of the bag of words.
const BUCKETS: usize = 64;
const ANIMALS: [&str; 3] = ["cat", "dog", "bird"];

/// The bucket of a word: FNV-1a, so that it is the same on every machine and in every run.
fn bucket(word: &str) -> usize {
    let hash = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % BUCKETS as u64) as usize
}

struct CaptionClassifier {
    max_steps: usize,
}

/// The warmup of the schedule, in steps.
const WARMUP: u64 = 5;
/// Peak learning rate and AdamW's weight decay.
const LEARNING_RATE: f64 = 0.05;
const WEIGHT_DECAY: f64 = 0.01;

struct State<Bk: AutodiffBackend> {
    model: Linear<Bk>,
    optimizer: OptimizerAdaptor<AdamW, Linear<Bk>, Bk>,
}

impl<Bk: AutodiffBackend> StepHooks<Bk> for CaptionClassifier {
    type State = State<Bk>;
    type Batch = (Tensor<Bk, 2>, Tensor<Bk, 1, Int>);

    fn setup(&mut self, ctx: &JobContext<'_>) -> HookResult<()> {
        let caption = ctx.schema.field_with_name("caption")?;
        if caption.data_type() != &DataType::Utf8 {
            return Err(format!("`caption` is {}, not text", caption.data_type()).into());
        }
        self.max_steps = ctx.spec.max_steps;
        Ok(())
    }

    fn configure(&mut self, ctx: &JobContext<'_>, device: &Bk::Device) -> HookResult<Self::State> {
        seed_everything::<Bk>(ctx.spec.seed, device);
        // The schedule runs in the runtime (`hyperparams.lr_schedule`, from the same bundle);
        // the optimizer is the bundle's AdamW.
        let bundle =
            default_adamw_bundle(LEARNING_RATE, WEIGHT_DECAY, WARMUP, self.max_steps as u64)?;
        Ok(State {
            model: LinearConfig::new(BUCKETS, ANIMALS.len()).init(device),
            optimizer: bundle.optimizer.init(),
        })
    }

    fn metric_names(&self) -> Vec<String> {
        vec!["loss".into()]
    }

    fn prepare_batch(
        &mut self,
        _state: &mut Self::State,
        batch: &RecordBatch,
        device: &Bk::Device,
    ) -> HookResult<Self::Batch> {
        let captions = batch
            .column_by_name("caption")
            .ok_or("no caption column")?
            .as_string_opt::<i32>()
            .ok_or("caption must be Utf8")?;
        let labels = batch
            .column_by_name("label")
            .ok_or("no label column")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("label must be Int64")?;
        let rows = batch.num_rows();
        let mut x = vec![0f32; rows * BUCKETS];
        for (row, caption) in captions.iter().enumerate() {
            for word in caption.unwrap_or_default().split_whitespace() {
                x[row * BUCKETS + bucket(&word.to_lowercase())] += 1.0;
            }
        }
        Ok((
            Tensor::from_data(TensorData::new(x, [rows, BUCKETS]), device),
            Tensor::from_data(TensorData::new(labels.values().to_vec(), [rows]), device),
        ))
    }

    fn train_step(
        &mut self,
        state: &mut Self::State,
        (x, y): Self::Batch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<Bk>> {
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
        dict.put_module::<Bk, _>("model", &state.model)?;
        dict.put_record::<Bk, _>("optimizer", state.optimizer.to_record())?;
        Ok(dict)
    }

    fn load_state_dict(
        &mut self,
        state: &mut Self::State,
        dict: StateDict,
        device: &Bk::Device,
    ) -> HookResult<()> {
        let model = dict.load_module::<Bk, _>("model", state.model.clone(), device)?;
        state.optimizer =
            dict.load_optimizer::<Bk, _, _>("optimizer", state.optimizer.clone(), &model, device)?;
        state.model = model;
        Ok(())
    }

    fn save_checkpoint(
        &self,
        state: &Self::State,
        ctx: &CheckpointContext<'_>,
    ) -> HookResult<Option<serde_json::Value>> {
        let Some(dir) = ctx.output_dir else {
            return Ok(None);
        };
        std::fs::write(
            dir.join("classifier.safetensors"),
            safetensors_bytes(&state.model)?,
        )?;
        let vocabulary = serde_json::json!({
            "hash": "fnv1a-64", "buckets": BUCKETS, "lowercase": true, "classes": ANIMALS,
        });
        std::fs::write(dir.join("vocabulary.json"), vocabulary.to_string())?;
        Ok(Some(
            serde_json::json!({"step": ctx.step, "final": ctx.is_final}),
        ))
    }

    fn load_checkpoint(
        &mut self,
        state: &mut Self::State,
        _extra: Option<serde_json::Value>,
        ctx: &ResumeContext<'_>,
    ) -> HookResult<()> {
        // The artifact is the model in another format: it must be the restored model's.
        if let Some(dir) = ctx.checkpoint_dir {
            let written = std::fs::read(dir.join("classifier.safetensors"))?;
            if written != safetensors_bytes(&state.model)? {
                return Err(format!(
                    "{}: classifier.safetensors differs from the checkpoint's model",
                    dir.display()
                )
                .into());
            }
        }
        Ok(())
    }
}

/// The layer as a safetensors file: `weight` `[in, out]` and `bias` `[out]`, f32.
fn safetensors_bytes<Bk: AutodiffBackend>(model: &Linear<Bk>) -> HookResult<Vec<u8>> {
    let weight = model.weight.val().into_data();
    let bias = model
        .bias
        .as_ref()
        .ok_or("the layer has no bias")?
        .val()
        .into_data();
    fn view(
        data: &TensorData,
    ) -> Result<safetensors::tensor::TensorView<'_>, safetensors::SafeTensorError> {
        safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            data.shape.to_vec(),
            data.as_bytes(),
        )
    }
    let tensors = BTreeMap::from([("weight", view(&weight)?), ("bias", view(&bias)?)]);
    Ok(safetensors::serialize(tensors, None)?)
}

/// 480 captions, 160 per animal, with filler words; the label is the animal.
fn write_data(path: &Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let colors = ["brown", "white", "black", "grey", "small", "big"];
    let places = ["garden", "sofa", "street", "tree", "roof", "beach", "field"];
    let (mut captions, mut labels) = (Vec::new(), Vec::new());
    for i in 0..480usize {
        let label = i % ANIMALS.len();
        captions.push(format!(
            "A {} {} on the {}",
            colors[(i * 7) % colors.len()],
            ANIMALS[label],
            places[(i * 5) % places.len()]
        ));
        labels.push(label as i64);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("caption", DataType::Utf8, false),
        Field::new("label", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(captions)),
        Arc::new(Int64Array::from(labels)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let run_dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "runs/captions".into()),
    );
    std::fs::create_dir_all(&run_dir)?;
    let max_steps: u64 = match std::env::args().nth(2) {
        Some(steps) => steps
            .parse()
            .map_err(|e| format!("MAX_STEPS {steps:?}: {e}"))?,
        None => 60,
    };
    let bundle = default_adamw_bundle(LEARNING_RATE, WEIGHT_DECAY, WARMUP, max_steps)?;
    let data = run_dir.join("captions.parquet");
    write_data(&data)?;
    let spec = serde_json::json!({
        "trainer_api_version": "v1",
        "run_id": "captions",
        "trainer": "caption-classifier",
        "max_steps": max_steps,
        "metric_every": 10,
        "checkpoint_every": 20,
        "seed": 11,
        "hyperparams": {"learning_rate": LEARNING_RATE, "lr_schedule": bundle.schedule_config},
        "dataset": {"parquet_paths": [data], "batch_size": 32, "columns": ["caption", "label"]},
        "keep_checkpoints": 2,
        "artifacts": {"sink": "dir", "path": run_dir.join("uploaded")},
    });
    let job = ResolvedJob {
        spec: JobSpec::parse(&spec.to_string(), "captions")?,
        trainer: "caption-classifier".into(),
        paths: JobPaths {
            checkpoints_dir: run_dir.join("checkpoints"),
            samples_dir: run_dir.join("samples"),
            events_path: run_dir.join("events.jsonl"),
            cancel_file: run_dir.join("CANCEL"),
        },
    };
    let hooks = CaptionClassifier { max_steps: 0 };
    let outcome = run_job::<B, _>(hooks, &job, Default::default(), &CancelToken::new(), vec![])?;
    let losses: Vec<f64> = std::fs::read_to_string(&job.paths.events_path)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "metrics")
        .filter_map(|e| e["metrics"]["loss"].as_f64())
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "status": outcome.status,
            "steps": outcome.step,
            "first_loss": losses.first(),
            "last_loss": losses.last(),
            "reason": outcome.reason,
        })
    );
    Ok(())
}
