//! The learning-rate range test on the digits MLP: a suggestion in a sensible range, and the
//! trainer left exactly as it was (a run after the test ends as one without it).

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use trainer::core::engine::LrFinderConfig;
use trainer::prelude::*;

use crate::support::digits::{self, DigitsBatcher};
use crate::support::mlp::MlpConfig;

type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;

fn trainer(data: &digits::Splits<digits::DigitItem>) -> crate::support::mlp::DigitsTrainer<B> {
    let device = Default::default();
    let model = MlpConfig::new(digits::PIXELS, vec![64], digits::CLASSES)
        .with_dropout(0.1)
        .init::<B>(3, &device);
    let config = TrainerConfig::new(2e-3)
        .with_epochs(Some(2))
        .with_batch_size(32)
        .with_seed(3);
    SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
        .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher)
        .build()
        .unwrap()
}

#[test]
fn the_range_test_suggests_a_sensible_rate_and_leaves_the_trainer_untouched() {
    let items = digits::load(digits::bundled_path()).unwrap();
    let data = digits::split(items, 0, 0.15, 0.15);
    let mut probed = trainer(&data);
    let before = probed.model().parameter_bytes();
    let found = probed.find_lr(&LrFinderConfig::default()).unwrap();
    assert_eq!(
        probed.model().parameter_bytes(),
        before,
        "the model's weights changed"
    );
    assert_eq!(probed.state().global_step, 0);
    // The sweep rises exponentially over its 100 steps (or stops when the loss diverges).
    assert!(
        found.lrs.len() >= 50 && found.lrs.windows(2).all(|w| w[1] > w[0]),
        "{:?}",
        found.lrs.len()
    );
    let suggestion = found.suggestion.expect("a suggestion");
    // The loss of this MLP with Adam falls fastest between 1e-2 and 1e-1 on the smoothed curve
    // (the smoothing lags the raw loss by a few steps); 2e-3, the example's rate, is safely
    // below it.
    assert!(
        (1e-3..=2e-1).contains(&suggestion),
        "suggested {suggestion:e}"
    );
    let first = found.smoothed[0];
    let lowest = found.smoothed.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(lowest < first * 0.9, "the loss fell: {first} to {lowest}");
    // Training after the test ends exactly as training without it: weights, optimizer state
    // and the random stream were not touched.
    probed.fit().unwrap();
    let mut plain = trainer(&data);
    plain.fit().unwrap();
    assert_eq!(
        probed.model().parameter_bytes(),
        plain.model().parameter_bytes()
    );
}

#[test]
fn the_example_prints_the_suggestion_and_draws_the_curve() {
    let run_dir = std::env::temp_dir().join(format!("trainer-lr-find-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let output = std::process::Command::new(crate::kill_resume::example_binary())
        .args(["--lr-find", "--device", "cpu", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let suggestion = line["lr_find"]["suggestion"]
        .as_f64()
        .expect("a suggestion");
    assert!((1e-3..=2e-1).contains(&suggestion), "{line}");
    let svg = std::fs::read_to_string(run_dir.join("lr-find.svg")).unwrap();
    let document = roxmltree::Document::parse(&svg).expect("the SVG parses");
    let lines = document
        .descendants()
        .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
        .count();
    assert!(lines >= 1, "a curve in the SVG");
    assert!(
        !run_dir.join("checkpoints").join("latest").exists(),
        "nothing was trained"
    );
    std::fs::remove_dir_all(&run_dir).unwrap();
}
