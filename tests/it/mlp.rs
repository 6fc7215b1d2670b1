//! The digits MLP on ndarray: it learns, and the same seed gives the same run.

use crate::common;

use crate::support::digits;
use common::digits_run;
use trainer_gpu::NdArrayBackend as B;

#[test]
fn the_mlp_lowers_its_loss_and_passes_ninety_percent() {
    let run = digits_run::<B>(Default::default(), 7, 8, 0.1);
    let losses = &run.train_losses;
    assert!(
        losses.windows(2).filter(|w| w[1] < w[0]).count() >= 5,
        "losses {losses:?}"
    );
    assert!(losses[7] < losses[0] * 0.5, "losses {losses:?}");
    assert!(
        run.test_accuracy > 0.9,
        "test accuracy {}",
        run.test_accuracy
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    // Dropout draws from the backend RNG, reseeded per batch from (seed, epoch, batch).
    let a = digits_run::<B>(Default::default(), 11, 2, 0.1);
    let b = digits_run::<B>(Default::default(), 11, 2, 0.1);
    assert_eq!(a, b);
    let c = digits_run::<B>(Default::default(), 12, 2, 0.1);
    assert_ne!(a.train_losses, c.train_losses);
}

#[test]
fn trainers_on_two_threads_do_not_share_the_random_stream() {
    // burn's backend RNG is global to the process; each trainer's dropout must still come from
    // its own (seed, epoch, batch) stream.
    let alone = [11, 12].map(|seed| digits_run::<B>(Default::default(), seed, 2, 0.5));
    for _ in 0..2 {
        let together = [11, 12].map(|seed| {
            std::thread::spawn(move || digits_run::<B>(Default::default(), seed, 2, 0.5))
        });
        let together = together.map(|handle| handle.join().unwrap());
        assert_eq!(together, alone);
    }
}

#[test]
fn the_digits_file_is_checked_line_by_line() {
    let dir = std::env::temp_dir().join(format!("trainer-digits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    let row: Vec<String> = (0..64).map(|_| "3".to_string()).collect();
    std::fs::write(&bad, format!("{},1\n{},x\n", row.join(","), row.join(","))).unwrap();
    let err = digits::load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv:2") && err.contains("label `x`"),
        "{err}"
    );
    std::fs::write(&bad, "1,2,3\n").unwrap();
    let err = digits::load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv:1") && err.contains("expected 65"),
        "{err}"
    );
    let err = digits::load(dir.join("missing.csv"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_bundled_data_has_every_row_and_the_split_is_fixed() {
    let items = digits::load(digits::bundled_path()).unwrap();
    assert_eq!(items.len(), 1797);
    let a = digits::split(items.clone(), 0, 0.15, 0.15);
    let b = digits::split(items, 0, 0.15, 0.15);
    assert_eq!(
        (a.train.len(), a.valid.len(), a.test.len()),
        (1257, 270, 270)
    );
    assert_eq!(a.test, b.test);
}

#[test]
fn validation_reports_the_confusion_matrix_and_macro_scores() {
    use crate::support::digits::{self, DigitsBatcher};
    use burn::data::dataset::InMemDataset;
    use trainer::prelude::*;
    let items = digits::load(digits::bundled_path()).unwrap();
    let data = digits::split(items, 0, 0.15, 0.15);
    let device = Default::default();
    let model = crate::support::mlp::MlpConfig::new(digits::PIXELS, vec![32], digits::CLASSES)
        .init::<B>(3, &device);
    let config = TrainerConfig::new(3e-3)
        .with_epochs(Some(2))
        .with_batch_size(64)
        .with_validation(Some(Frequency::Epochs(1)));
    let mut t =
        SupervisedTrainer::builder(model, burn::optim::AdamConfig::new().init(), config, device)
            .train_data(InMemDataset::new(data.train), DigitsBatcher)
            .valid_data(InMemDataset::new(data.valid), DigitsBatcher)
            .top_k(3)
            .build()
            .unwrap();
    let report = t.fit().unwrap();
    let valid = report.valid.unwrap();
    assert!(
        valid["top3_accuracy"] >= valid["accuracy"] && valid["top3_accuracy"] <= 1.0,
        "{valid:?}"
    );
    assert!(report.train.as_ref().unwrap().contains_key("top3_accuracy"));
    let confusion = t.confusion_matrix(Split::Valid).unwrap();
    assert_eq!(confusion.classes(), 10);
    let total: u64 = confusion.counts.iter().flatten().sum();
    let hits: u64 = (0..10).map(|c| confusion.counts[c][c]).sum();
    assert_eq!(total, 270);
    assert!((hits as f64 / total as f64 - valid["accuracy"]).abs() < 1e-12);
    for (name, value) in confusion.macro_values() {
        assert_eq!(valid[&name], value, "{name}");
    }
    assert!(valid["f1_macro"] > 0.5, "{valid:?}");
}

#[test]
fn two_replicas_reach_the_same_accuracy_bar() {
    // The example binary: two replicas on threads, each with batches of 32, every epoch dealt
    // between them (40 batches: 20 optimizer steps an epoch instead of 40).
    let output = std::process::Command::new(crate::kill_resume::example_binary())
        .args(["--device", "ndarray", "--replicas", "2", "--seed", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    assert_eq!(result["replicas"], 2, "{result}");
    assert_eq!(result["nodes"], 1, "{result}");
    assert_eq!(result["steps"], 30 * 20, "{result}");
    let accuracy = result["test_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
}
