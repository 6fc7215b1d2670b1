//! Checkpoints of earlier format versions still load and train on. `fixtures/format-1.1/` holds
//! the last checkpoint of `cargo run --example mlp -- --epochs 3 --hidden 8 --patience 5` as the
//! release that wrote format 1.1 wrote it (early stopping's state in its old form, kept
//! weights); `fixtures/format-1.0/` is the same file as format 1.0 had it (no kept weights).

use std::path::{Path, PathBuf};

use crate::support::digits::{self, DigitsBatcher};
use crate::support::mlp::MlpConfig;
use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use trainer::prelude::*;

type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(version)
        .join("mlp-hidden8.ckpt")
}

#[test]
fn checkpoints_of_formats_1_0_and_1_1_load_and_train_on() {
    let items = digits::load(digits::bundled_path()).unwrap();
    let data = digits::split(items, 0, 0.15, 0.15);
    for (version, kept) in [("format-1.0", false), ("format-1.1", true)] {
        let device = Default::default();
        // The example's run: seed 42, batch 32, validation every epoch; one epoch more.
        let model = MlpConfig::new(digits::PIXELS, vec![8], digits::CLASSES)
            .with_dropout(0.1)
            .init::<B>(42, &device);
        let config = TrainerConfig::new(2e-3)
            .with_epochs(Some(4))
            .with_batch_size(32)
            .with_seed(42)
            .with_validation(Some(Frequency::Epochs(1)));
        let early_stopping = EarlyStopping::new(Monitor::min(Split::Valid, "loss"))
            .patience(5)
            .restore_best_weights(true);
        let mut trainer =
            SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
                .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher)
                .valid_data(InMemDataset::new(data.valid.clone()), DigitsBatcher)
                .callback(early_stopping)
                .build()
                .unwrap();
        trainer
            .load_checkpoint(fixture(version))
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(
            (trainer.state().epoch, trainer.state().global_step),
            (3, 120),
            "{version}"
        );
        assert_eq!(trainer.kept_weights().is_some(), kept, "{version}");
        let report = trainer.fit().unwrap();
        assert_eq!((report.epochs, report.steps), (4, 160), "{version}");
    }
}
