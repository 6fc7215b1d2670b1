//! The digits MLP on ndarray: it learns, and the same seed gives the same run.

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use trainer::digits::{self, DigitsBatcher};
use trainer::mlp::MlpConfig;
use trainer::prelude::*;
use trainer_gpu::NdArrayBackend as B;

fn short_run(seed: u64, epochs: usize) -> (Vec<f64>, f64, String) {
    let items = digits::load(digits::bundled_path()).unwrap();
    let data = digits::split(items, 0, 0.15, 0.15);
    let device = Default::default();
    let model = MlpConfig::new(digits::PIXELS, vec![64], digits::CLASSES)
        .with_dropout(0.1)
        .init::<B>(seed, &device);
    let config = TrainerConfig::new(3e-3)
        .with_epochs(Some(epochs))
        .with_batch_size(32)
        .with_seed(seed);
    let mut trainer = SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
        .train_data(InMemDataset::new(data.train), DigitsBatcher)
        .valid_data(InMemDataset::new(data.valid), DigitsBatcher)
        .test_data(InMemDataset::new(data.test), DigitsBatcher)
        .build()
        .unwrap();
    trainer.fit().unwrap();
    let losses = trainer.state().history.iter().map(|e| e.train["loss"]).collect();
    let accuracy = trainer.test().unwrap()["accuracy"];
    let weights = format!("{:?}", &trainer.model().parameter_bytes()[..64]);
    (losses, accuracy, weights)
}

#[test]
fn the_mlp_lowers_its_loss_and_passes_ninety_percent() {
    let (losses, accuracy, _) = short_run(7, 8);
    assert!(losses.windows(2).filter(|w| w[1] < w[0]).count() >= 5, "losses {losses:?}");
    assert!(losses[7] < losses[0] * 0.5, "losses {losses:?}");
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    // Dropout draws from the backend RNG, reseeded per batch from (seed, epoch, batch).
    let a = short_run(11, 2);
    let b = short_run(11, 2);
    assert_eq!(a, b);
    let c = short_run(12, 2);
    assert_ne!(a.0, c.0);
}

#[test]
fn the_digits_file_is_checked_line_by_line() {
    let dir = std::env::temp_dir().join(format!("trainer-digits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    let row: Vec<String> = (0..64).map(|_| "3".to_string()).collect();
    std::fs::write(&bad, format!("{},1\n{},x\n", row.join(","), row.join(","))).unwrap();
    let err = digits::load(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.csv:2") && err.contains("label `x`"), "{err}");
    std::fs::write(&bad, "1,2,3\n").unwrap();
    let err = digits::load(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.csv:1") && err.contains("expected 65"), "{err}");
    let err = digits::load(dir.join("missing.csv")).unwrap_err().to_string();
    assert!(err.contains("missing.csv"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_bundled_data_has_every_row_and_the_split_is_fixed() {
    let items = digits::load(digits::bundled_path()).unwrap();
    assert_eq!(items.len(), 1797);
    let a = digits::split(items.clone(), 0, 0.15, 0.15);
    let b = digits::split(items, 0, 0.15, 0.15);
    assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (1257, 270, 270));
    assert_eq!(a.test, b.test);
}
