//! Small parquet tables and job helpers for the tests.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use trainer_job::{JobPaths, JobSpec, ResolvedJob};

pub type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;

/// A table of `rows` rows: `id` (Int64, the row number from `first_id`), `x0`, `x1` (Float32),
/// `label` (Int64, 0..3 from the features) and `name` (Utf8), in row groups of `group` rows.
pub fn write_table(path: &Path, first_id: i64, rows: usize, group: usize) {
    let ids: Vec<i64> = (0..rows as i64).map(|i| first_id + i).collect();
    let x0: Vec<f32> = ids
        .iter()
        .map(|&i| ((i * 37 % 101) as f32) / 101.0)
        .collect();
    let x1: Vec<f32> = ids.iter().map(|&i| ((i * 53 % 89) as f32) / 89.0).collect();
    let label: Vec<i64> = x0
        .iter()
        .zip(&x1)
        .map(|(a, b)| {
            if a + b < 0.7 {
                0
            } else if a + b < 1.3 {
                1
            } else {
                2
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x0", DataType::Float32, false),
        Field::new("x1", DataType::Float32, false),
        Field::new("label", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Float32Array::from(x0)),
        Arc::new(Float32Array::from(x1)),
        Arc::new(Int64Array::from(label)),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("row-{i}")),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let mut writer =
        ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A job on `files` with the mlp-classifier, its files under `dir`.
pub fn job(
    dir: &Path,
    files: Vec<PathBuf>,
    max_steps: usize,
    metric_every: usize,
    checkpoint_every: usize,
) -> ResolvedJob {
    let spec = serde_json::json!({
        "trainer_api_version": "v1",
        "run_id": "test-run",
        "trainer": "mlp-classifier",
        "max_steps": max_steps,
        "metric_every": metric_every,
        "checkpoint_every": checkpoint_every,
        "seed": 5,
        "hyperparams": {"hidden_sizes": [8], "learning_rate": 0.01},
        "dataset": {"parquet_paths": files, "batch_size": 16, "readahead": 2, "columns": ["x0", "x1", "label"]}
    });
    ResolvedJob {
        spec: JobSpec::parse(&spec.to_string(), "test").unwrap(),
        trainer: "mlp-classifier".into(),
        paths: JobPaths {
            checkpoints_dir: dir.join("checkpoints"),
            samples_dir: dir.join("samples"),
            events_path: dir.join("events.jsonl"),
            cancel_file: dir.join("CANCEL"),
        },
    }
}

/// Scripted trouble for a test trainer's step: fail, panic or cancel the job at a step.
#[derive(Default)]
pub struct Trouble {
    pub fail_at: Option<usize>,
    pub panic_at: Option<usize>,
    pub cancel_at: Option<(usize, trainer_job::CancelToken)>,
}

impl Trouble {
    /// What the trouble does at `step`: an error, a panic, a cancellation, or nothing.
    pub fn strike(&self, step: usize) -> trainer_job::HookResult<()> {
        if self.fail_at == Some(step) {
            return Err(format!("scripted failure at step {step}").into());
        }
        if self.panic_at == Some(step) {
            panic!("scripted panic at step {step}");
        }
        if let Some((at, token)) = &self.cancel_at {
            if *at == step {
                token.cancel();
            }
        }
        Ok(())
    }
}

/// The events file's lines, parsed.
pub fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Steps of the events of `kind`.
pub fn steps_of(events: &[Value], kind: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["step"].as_u64().unwrap())
        .collect()
}

/// The `StepHooks` methods of a test trainer that wraps `mlp-classifier` in its field `inner`,
/// all but `train_step` (and the checkpoint hooks, left to their defaults unless the wrapper
/// writes them): `impl<Bk: AutodiffBackend> StepHooks<Bk> for W { delegate_to_mlp!(Bk); ... }`.
#[macro_export]
macro_rules! delegate_to_mlp {
    ($b:ident) => {
        type State = trainer_job::mlp_classifier::MlpState<$b>;
        type Batch = trainer_job::mlp_classifier::MlpBatch<$b>;

        fn setup(&mut self, ctx: &trainer_job::JobContext<'_>) -> trainer_job::HookResult<()> {
            <trainer_job::mlp_classifier::MlpClassifier as trainer_job::StepHooks<$b>>::setup(
                &mut self.inner,
                ctx,
            )
        }
        fn configure(
            &mut self,
            ctx: &trainer_job::JobContext<'_>,
            device: &$b::Device,
        ) -> trainer_job::HookResult<Self::State> {
            <trainer_job::mlp_classifier::MlpClassifier as trainer_job::StepHooks<$b>>::configure(
                &mut self.inner,
                ctx,
                device,
            )
        }
        fn metric_names(&self) -> Vec<String> {
            <trainer_job::mlp_classifier::MlpClassifier as trainer_job::StepHooks<$b>>::metric_names(
                &self.inner,
            )
        }
        fn prepare_batch(
            &mut self,
            state: &mut Self::State,
            batch: &trainer_job::RecordBatch,
            device: &$b::Device,
        ) -> trainer_job::HookResult<Self::Batch> {
            self.inner.prepare_batch(state, batch, device)
        }
        fn state_dict(&self, state: &Self::State) -> trainer_job::HookResult<trainer_job::StateDict> {
            <trainer_job::mlp_classifier::MlpClassifier as trainer_job::StepHooks<$b>>::state_dict(
                &self.inner,
                state,
            )
        }
        fn load_state_dict(
            &mut self,
            state: &mut Self::State,
            dict: trainer_job::StateDict,
            device: &$b::Device,
        ) -> trainer_job::HookResult<()> {
            self.inner.load_state_dict(state, dict, device)
        }
        fn sample(
            &mut self,
            state: &mut Self::State,
            ctx: &trainer_job::SampleContext<'_>,
        ) -> trainer_job::HookResult<Option<std::path::PathBuf>> {
            self.inner.sample(state, ctx)
        }
        fn mock_batch(
            &mut self,
            ctx: &trainer_job::JobContext<'_>,
            index: usize,
        ) -> trainer_job::HookResult<trainer_job::RecordBatch> {
            <trainer_job::mlp_classifier::MlpClassifier as trainer_job::StepHooks<$b>>::mock_batch(
                &mut self.inner,
                ctx,
                index,
            )
        }
    };
}
