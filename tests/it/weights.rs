//! Weights out and in: `trainer export` of the example's checkpoint read by the `safetensors`
//! Python package and run forward with numpy; a file numpy writes in PyTorch's layout loaded
//! back (`load_weights`, the example's `--init-from`); damaged and mismatched files refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::{Tensor, TensorData};
use trainer::core::weights::{export_safetensors, load_weights, Layout};
use trainer::prelude::*;

use crate::support::digits::{self, DigitsBatcher};
use crate::support::mlp::{DigitsTrainer, Mlp, MlpConfig};

type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;
type Inner = burn_ndarray::NdArray<f32>;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-weights-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trainer_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

/// The example's model as it was trained (its defaults: 128 hidden units, seed 42).
fn fresh_model(seed: u64) -> Mlp<B> {
    MlpConfig::new(digits::PIXELS, vec![128], digits::CLASSES)
        .with_dropout(0.1)
        .init::<B>(seed, &Default::default())
}

/// The model of the checkpoint `file` (loaded into a trainer of the example's settings).
fn checkpointed_model(file: &Path, data: &digits::Splits<digits::DigitItem>) -> Mlp<B> {
    let config = TrainerConfig::new(2e-3)
        .with_epochs(Some(3))
        .with_batch_size(32)
        .with_seed(42);
    let mut trainer: DigitsTrainer<B> = SupervisedTrainer::builder(
        fresh_model(42),
        AdamConfig::new().init(),
        config,
        Default::default(),
    )
    .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher)
    .build()
    .unwrap();
    trainer.load_checkpoint(file).unwrap();
    trainer.into_model()
}

/// The logits of the test images, without dropout.
fn logits(model: &Mlp<B>, images: &[f32], rows: usize) -> Vec<f32> {
    let inner: Mlp<Inner> = burn::module::AutodiffModule::valid(model);
    let input = Tensor::<Inner, 2>::from_data(
        TensorData::new(images.to_vec(), [rows, digits::PIXELS]),
        &Default::default(),
    );
    inner.forward(input).into_data().to_vec::<f32>().unwrap()
}

fn test_images(data: &digits::Splits<digits::DigitItem>) -> (Vec<f32>, Vec<u8>) {
    let images = data.test.iter().flat_map(|item| item.pixels).collect();
    let labels = data.test.iter().map(|item| item.label).collect();
    (images, labels)
}

const NUMPY_FORWARD: &str = r#"
import json, sys
import numpy as np
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
run = json.load(open(sys.argv[1]))
tensors = load_file(sys.argv[2])
with safe_open(sys.argv[2], "np") as f:
    metadata = f.metadata()
x = np.array(run["images"], dtype=np.float32).reshape(-1, 64)
layers = sorted({int(k.split(".")[1]) for k in tensors})
for i in layers:
    w, b = tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]
    assert w.shape[1] == x.shape[1], (i, w.shape, x.shape)  # PyTorch's [out, in]
    x = x @ w.T + b
    if i != layers[-1]:
        x = np.maximum(x, 0)
expected = np.array(run["logits"], dtype=np.float32).reshape(x.shape)
accuracy = float((x.argmax(1) == np.array(run["labels"])).mean())
# The same weights in PyTorch's layout, written by numpy, without metadata.
save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, sys.argv[3])
print(json.dumps({"max_diff": float(np.abs(x - expected).max()), "accuracy": accuracy, "metadata": metadata}))
"#;

#[test]
fn the_example_exported_runs_forward_in_numpy_and_numpy_weights_load_back() {
    let Some(python) = crate::tensorboard::python() else {
        return;
    };
    let dir = temp_dir("numpy");
    let run_dir = dir.join("run");
    let output = Command::new(crate::kill_resume::example_binary())
        .args(["--epochs", "3", "--device", "cpu", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let exported = dir.join("model.safetensors");
    let output = trainer_binary()
        .arg("export")
        .arg(run_dir.join("checkpoints"))
        .arg("--torch-names")
        .arg("-o")
        .arg(&exported)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("layers.0.weight, layers.1.weight") && !stderr.contains("not mapped"),
        "{stderr}"
    );
    // The checkpointed model's logits on the test split, for numpy to compare with.
    let data = digits::split(digits::load(digits::bundled_path()).unwrap(), 0, 0.15, 0.15);
    let (images, labels) = test_images(&data);
    let checkpoint = trainer_core::checkpoint::latest_in(&run_dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    let model = checkpointed_model(&checkpoint, &data);
    let expected = logits(&model, &images, labels.len());
    let run = dir.join("run.json");
    std::fs::write(
        &run,
        serde_json::json!({"images": images, "labels": labels, "logits": expected}).to_string(),
    )
    .unwrap();
    let from_numpy = dir.join("from_numpy.safetensors");
    let output = Command::new(python)
        .arg("-c")
        .arg(NUMPY_FORWARD)
        .arg(&run)
        .arg(&exported)
        .arg(&from_numpy)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let numpy: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(numpy["max_diff"].as_f64().unwrap() <= 1e-5, "{numpy}");
    assert_eq!(
        numpy["accuracy"].as_f64(),
        result["test_accuracy"].as_f64(),
        "{numpy} vs {result}"
    );
    assert_eq!(numpy["metadata"]["layout"], "torch");
    assert_eq!(numpy["metadata"]["step"], result["steps"].to_string());
    // numpy's file (PyTorch's layout, no metadata) loads back into a fresh model: same logits.
    let (loaded, report) = load_weights(
        fresh_model(7),
        &from_numpy,
        Layout::Auto,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        (report.loaded, report.transposed.len(), report.layout),
        (4, 2, Layout::Auto)
    );
    assert_eq!(logits(&loaded, &images, labels.len()), expected);
    // And the example trains from it.
    let output = Command::new(crate::kill_resume::example_binary())
        .args(["--epochs", "1", "--device", "cpu", "--init-from"])
        .arg(&from_numpy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("initialised 4 parameters"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exports_in_both_layouts_load_back_bit_for_bit_and_bad_files_are_refused() {
    let dir = temp_dir("roundtrip");
    let data = digits::split(digits::load(digits::bundled_path()).unwrap(), 0, 0.15, 0.15);
    let (images, labels) = test_images(&data);
    // A short run's checkpoint.
    let config = TrainerConfig::new(2e-3)
        .with_epochs(Some(1))
        .with_batch_size(32)
        .with_seed(42);
    let mut trainer: DigitsTrainer<B> = SupervisedTrainer::builder(
        fresh_model(42),
        AdamConfig::new().init(),
        config,
        Default::default(),
    )
    .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher)
    .build()
    .unwrap();
    trainer.fit().unwrap();
    let checkpoint = dir.join("run.ckpt");
    trainer.save_checkpoint(&checkpoint).unwrap();
    let expected = logits(trainer.model(), &images, labels.len());
    let bytes = std::fs::read(&checkpoint).unwrap();
    for layout in [Layout::Burn, Layout::Torch] {
        let (file, report) = export_safetensors(&bytes, "run.ckpt", layout).unwrap();
        assert_eq!(report.tensors, 4);
        let path = dir.join(format!("{}.safetensors", layout.name()));
        std::fs::write(&path, &file).unwrap();
        // Auto reads the layout from the file's metadata.
        let (loaded, _) =
            load_weights(fresh_model(9), &path, Layout::Auto, &Default::default()).unwrap();
        assert_eq!(
            logits(&loaded, &images, labels.len()),
            expected,
            "{layout:?}"
        );
        // A file read in the wrong layout is refused, naming the tensor and both shapes.
        let wrong = if layout == Layout::Burn {
            Layout::Torch
        } else {
            Layout::Burn
        };
        let message = load_weights(fresh_model(9), &path, wrong, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("layers.0.weight")
                && message.contains("[64, 128]")
                && message.contains("[128, 64]"),
            "{message}"
        );
    }
    // Damaged and mismatched files.
    let good = std::fs::read(dir.join("torch.safetensors")).unwrap();
    let case = |name: &str, bytes: &[u8]| -> String {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        load_weights(fresh_model(9), &path, Layout::Auto, &Default::default())
            .unwrap_err()
            .to_string()
    };
    let message = case("truncated.safetensors", &good[..good.len() / 2]);
    assert!(
        message.contains("not a readable safetensors file"),
        "{message}"
    );
    let message = case("empty.safetensors", b"");
    assert!(
        message.contains("not a readable safetensors file"),
        "{message}"
    );
    let tensor = |name: &str, dtype: safetensors::Dtype, shape: Vec<usize>, data: Vec<u8>| {
        (name.to_string(), dtype, shape, data)
    };
    let write = |tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>| -> Vec<u8> {
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    };
    let message = case(
        "missing.safetensors",
        &write(vec![tensor(
            "layers.0.weight",
            safetensors::Dtype::F32,
            vec![128, 64],
            vec![0; 128 * 64 * 4],
        )]),
    );
    assert!(
        message.contains("has no tensor `layers.0.bias`"),
        "{message}"
    );
    let message = case(
        "shape.safetensors",
        &write(vec![tensor(
            "layers.0.weight",
            safetensors::Dtype::F32,
            vec![10, 64],
            vec![0; 10 * 64 * 4],
        )]),
    );
    assert!(
        message.contains("`layers.0.weight` has shape [10, 64] in the file"),
        "{message}"
    );
    let message = case(
        "dtype.safetensors",
        &write(vec![tensor(
            "layers.0.weight",
            safetensors::Dtype::I32,
            vec![128, 64],
            vec![0; 128 * 64 * 4],
        )]),
    );
    assert!(message.contains("`layers.0.weight` holds I32"), "{message}");
    let message = case("not-pytorch.pt", b"PK\x03\x04 not a zip archive at all");
    assert!(message.contains("not a readable PyTorch file"), "{message}");
    // A damaged checkpoint does not export.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    assert!(export_safetensors(&damaged, "damaged.ckpt", Layout::Torch)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    std::fs::remove_dir_all(&dir).unwrap();
}
