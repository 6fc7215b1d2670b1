//! Loading a real trainer checkpoint: every kind of damage, a future version, another model's
//! checkpoint and a config that changes the data order are clear errors that leave the trainer
//! as it was.

use crate::common;

use std::path::PathBuf;

use common::dropout_net::{net_trainer, parameter_bits, refused_load};
use trainer_core::checkpoint::{CheckpointSummary, HEADER_LEN};
use trainer_core::prelude::*;

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(1))
        .with_batch_size(8)
        .with_seed(5)
}

fn saved(name: &str) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("trainer-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = net_trainer(config(), 0.0, vec![]);
    t.fit().unwrap();
    let path = dir.join("run.ckpt");
    t.save_checkpoint(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (dir, bytes)
}

/// Loads `bytes` into a fresh trainer; the error's text, and whether the trainer kept its weights.
fn load_error(dir: &std::path::Path, bytes: &[u8]) -> String {
    let path = dir.join("damaged.ckpt");
    std::fs::write(&path, bytes).unwrap();
    refused_load(&mut net_trainer(config(), 1.0, vec![]), &path)
}

#[test]
fn damaged_checkpoints_are_refused_with_the_reason() {
    let (dir, bytes) = saved("damaged");
    for tenth in 0..10 {
        let cut = bytes.len() * tenth / 10;
        let message = load_error(&dir, &bytes[..cut]);
        assert!(message.contains("truncated"), "cut at {cut}: {message}");
    }
    let mut flipped = bytes.clone();
    flipped[13] ^= 0x01; // payload length
    let message = load_error(&dir, &flipped);
    assert!(message.contains("truncated or extended"), "{message}");
    let mut flipped = bytes.clone();
    flipped[21] ^= 0x10; // stored checksum
    assert!(load_error(&dir, &flipped).contains("checksum mismatch"));
    let mut flipped = bytes.clone();
    let middle = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
    flipped[middle] ^= 0x04;
    assert!(load_error(&dir, &flipped).contains("checksum mismatch"));
    let mut magic = bytes.clone();
    magic[..8].copy_from_slice(b"PK\x03\x04zip!");
    assert!(load_error(&dir, &magic).contains("not a trainer checkpoint"));
    let mut future = bytes.clone();
    future[8..10].copy_from_slice(&7u16.to_le_bytes());
    future[10..12].copy_from_slice(&0u16.to_le_bytes());
    let message = load_error(&dir, &future);
    assert!(
        message.contains("version 7.0") && message.contains("reads version 1.x"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_models_checkpoint_names_the_tensor_that_differs() {
    let (dir, _) = saved("other-model");
    // The same kind of net with 32 hidden units instead of 16.
    let device = Default::default();
    let mut wide = SupervisedTrainer::builder(
        common::dropout_net::DropoutNet::<common::B>::new(32, 0.0, &device),
        burn::optim::AdamConfig::new().init(),
        config(),
        device,
    )
    .train_data(
        burn::data::dataset::InMemDataset::new(common::items(40)),
        common::RowBatcher,
    )
    .build()
    .unwrap();
    let message = wide
        .load_checkpoint(dir.join("run.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("does not fit")
            && message.contains("hidden.weight")
            && message.contains("[2, 16]")
            && message.contains("[2, 32]"),
        "{message}"
    );
    // A model of another structure does not even decode.
    let mut regressor = common::trainer(config(), 16, vec![]);
    let message = regressor
        .load_checkpoint(dir.join("run.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("does not fit") && message.contains("does not decode"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_config_that_changes_the_data_order_is_refused() {
    let (dir, _) = saved("config");
    let mut t = net_trainer(config().with_batch_size(16), 0.0, vec![]);
    let message = t
        .load_checkpoint(dir.join("run.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`batch_size` is 8 in the checkpoint and 16 in this trainer"),
        "{message}"
    );
    let mut t = net_trainer(config().with_seed(6), 0.0, vec![]);
    assert!(t
        .load_checkpoint(dir.join("run.ckpt"))
        .unwrap_err()
        .to_string()
        .contains("`seed`"));
    // More epochs is fine: a finished run can be extended.
    let mut t = net_trainer(config().with_epochs(Some(2)), 0.0, vec![]);
    t.load_checkpoint(dir.join("run.ckpt")).unwrap();
    assert_eq!(t.fit().unwrap().epochs, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_summary_reads_a_checkpoint_without_the_model() {
    let (dir, bytes) = saved("summary");
    let summary = CheckpointSummary::from_bytes(&bytes, "run.ckpt").unwrap();
    assert_eq!(summary.format_version, "1.2");
    assert_eq!(summary.payload_bytes as usize, bytes.len() - HEADER_LEN);
    assert_eq!(
        (summary.epoch, summary.global_step, summary.batch_in_epoch),
        (1, 13, 0)
    );
    assert_eq!(summary.samples_seen, 100);
    assert_eq!(summary.seed, 5);
    assert_eq!(summary.burn_version, "0.21.0");
    assert!(summary.metrics["train"].contains_key("loss"));
    assert!(CheckpointSummary::from_bytes(&bytes[..bytes.len() / 2], "half").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_recorded_burn_version_is_the_one_in_the_lock_file() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
    let entry = format!(
        "name = \"burn\"\nversion = \"{}\"",
        trainer_core::checkpoint::BURN_VERSION
    );
    assert!(
        lock.contains(&entry),
        "Cargo.lock does not pin burn {}",
        trainer_core::checkpoint::BURN_VERSION
    );
}

#[test]
fn a_snapshot_keeps_the_values_of_its_moment_while_training_goes_on() {
    let config = TrainerConfig::new(0.01)
        .with_epochs(Some(4))
        .with_batch_size(8)
        .with_seed(5);
    let mut t = net_trainer(
        config.clone(),
        0.0,
        vec![Box::new(common::dropout_net::StopAt(26))],
    );
    t.fit().unwrap();
    let at_snapshot = parameter_bits(t.model());
    let snapshot = t.snapshot().unwrap();
    // Two more epochs change every parameter; the snapshot is encoded afterwards, on another
    // thread, as the checkpoint writer does.
    t.fit().unwrap();
    assert_eq!(t.state().global_step, 52);
    let after = parameter_bits(t.model());
    assert!(after.iter().zip(&at_snapshot).all(|(a, b)| a != b));
    let bytes = std::thread::scope(|s| s.spawn(|| snapshot.encode().unwrap()).join().unwrap());
    let dir = std::env::temp_dir().join(format!("trainer-load-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("snapshot.ckpt");
    std::fs::write(&path, bytes).unwrap();
    let mut fresh = net_trainer(config, 4.0, vec![]);
    fresh.load_checkpoint(&path).unwrap();
    assert_eq!(fresh.state().global_step, 26);
    assert!(parameter_bits(fresh.model()) == at_snapshot);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_files_own_scan_stands_for_a_record_only_when_the_record_encodes_to_the_same_bytes() {
    use trainer_core::checkpoint::{record_tensors, scan_payload};
    let (dir, bytes) = saved("record-source");
    let payload = &bytes[HEADER_LEN..];
    let scan = scan_payload(payload).unwrap();
    let source = scan.source(payload, "module").expect("a module field");
    let record: rmpv::Value = rmp_serde::from_slice(source.encoded).unwrap();
    let own = record_tensors(&record, None).unwrap();
    assert!(!own.is_empty());
    assert_eq!(record_tensors(&record, Some(source)).unwrap(), own);

    // The same record with the fields of every map in reverse order: serde would decode it
    // the same, but the file's order no longer is the record's.
    fn reversed(value: &rmpv::Value) -> rmpv::Value {
        match value {
            rmpv::Value::Map(entries) => rmpv::Value::Map(
                entries
                    .iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reversed(v)))
                    .collect(),
            ),
            rmpv::Value::Array(items) => rmpv::Value::Array(items.iter().map(reversed).collect()),
            other => other.clone(),
        }
    }
    let shuffled = reversed(&record);
    let theirs = record_tensors(&shuffled, Some(source)).unwrap();
    assert_eq!(theirs, record_tensors(&shuffled, None).unwrap());
    let shapes = |tensors: &[trainer_core::checkpoint::ScannedTensor]| {
        tensors.iter().map(|t| t.shape.clone()).collect::<Vec<_>>()
    };
    assert_ne!(
        shapes(&theirs),
        shapes(&own),
        "the reordered record lists its tensors in its own order, not the file's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_optimizer_record_stands_for_its_file_bytes_whatever_the_order_of_its_entries() {
    use trainer_core::checkpoint::{keyed_record_tensors, record_tensors, scan_payload};
    let (dir, bytes) = saved("keyed-source");
    let payload = &bytes[HEADER_LEN..];
    let scan = scan_payload(payload).unwrap();
    let source = scan
        .source(payload, "optimizer")
        .expect("an optimizer field");
    let record: rmpv::Value = rmp_serde::from_slice(source.encoded).unwrap();
    let rmpv::Value::Map(entries) = &record else {
        panic!("burn's optimizer records are maps by parameter id")
    };
    assert!(entries.len() >= 2, "entries to reorder");
    // The entries in another order, as a hash map decoded in another process writes them.
    let reordered = rmpv::Value::Map(entries.iter().rev().cloned().collect());
    let own = record_tensors(&reordered, None).unwrap();
    let keyed = keyed_record_tensors(&reordered, Some(source)).unwrap();
    let paths = |tensors: &[trainer_core::checkpoint::ScannedTensor]| {
        tensors.iter().map(|t| t.path.clone()).collect::<Vec<_>>()
    };
    // The file's own scan stands for the record (its order, not the record's)...
    assert_eq!(
        paths(&keyed),
        paths(&record_tensors(&record, None).unwrap())
    );
    assert_ne!(paths(&keyed), paths(&own));
    // ... and lists the same tensors.
    let sorted = |mut tensors: Vec<trainer_core::checkpoint::ScannedTensor>| {
        tensors.sort_by(|a, b| a.path.cmp(&b.path));
        tensors
    };
    assert_eq!(sorted(keyed), sorted(own));

    // An entry the file does not hold (a changed state value) is not matched: the record's own
    // encoding is scanned instead.
    let mut changed = entries.clone();
    changed.swap(0, 1);
    changed[0].1 = changed[1].1.clone();
    let changed = rmpv::Value::Map(changed);
    assert_eq!(
        keyed_record_tensors(&changed, Some(source)).unwrap(),
        record_tensors(&changed, None).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
