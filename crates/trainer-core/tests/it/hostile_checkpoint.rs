//! Checkpoints crafted by someone else: the checksum is recomputed (anyone can), so only the
//! loader's own checks stand between the bytes and burn. Each case is a clear error that names
//! the tensor, and the trainer keeps its weights and state. ndarray's debug assertions are off
//! in the test build (`[profile.dev.package.ndarray]`), as in a release build, so a length that
//! reached ndarray unchecked would crash this test rather than fail an assertion.

use crate::common;

use std::path::{Path, PathBuf};

use common::dropout_net::{net_trainer, refused_load};
use common::payload::{field, tensors};
use rmpv::Value;
use trainer_core::checkpoint::{encode, CheckpointSummary, HEADER_LEN};
use trainer_core::prelude::*;

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(1))
        .with_batch_size(8)
        .with_seed(5)
}

/// A real checkpoint's payload, as a MessagePack value to tamper with.
fn saved_payload(name: &str) -> (PathBuf, Value) {
    let dir = std::env::temp_dir().join(format!("trainer-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = net_trainer(config(), 0.0, vec![]);
    t.fit().unwrap();
    let path = dir.join("run.ckpt");
    t.save_checkpoint(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let payload = rmpv::decode::read_value(&mut &bytes[HEADER_LEN..]).unwrap();
    (dir, payload)
}

/// Writes `payload` as a checkpoint with a valid header and checksum, loads it into a fresh
/// trainer, checks that the trainer is untouched, and returns the error.
fn load_error(dir: &Path, payload: &Value) -> String {
    let path = dir.join("crafted.ckpt");
    std::fs::write(&path, encode(payload).unwrap()).unwrap();
    let mut t = net_trainer(config(), 1.0, vec![]);
    let lr = t.learning_rate();
    let error = refused_load(&mut t, &path);
    assert_eq!(t.learning_rate(), lr, "a failed load changed the schedule");
    // The summary (`trainer inspect`) reads the same bytes without the model: no panic either.
    let _ = CheckpointSummary::read(&path);
    error
}

#[test]
fn a_tensor_with_fewer_bytes_than_its_shape_is_refused() {
    let (dir, mut payload) = saved_payload("short");
    let mut module = field(&mut payload, "module").clone();
    let weight = tensors(&mut module).remove(0);
    if let Value::Binary(bytes) = field(weight, "bytes") {
        bytes.truncate(bytes.len() - 4);
    }
    *field(&mut payload, "module") = module;
    let message = load_error(&dir, &payload);
    assert!(
        message.contains("module.hidden.weight")
            && message.contains("needs 128 bytes, the record holds 124"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dtype_that_disagrees_with_the_bytes_is_refused() {
    let (dir, payload) = saved_payload("dtype");
    let cases: [(&str, Value, &str); 4] = [
        (
            "F64",
            Value::from("F64"),
            "needs 256 bytes, the record holds 128",
        ),
        (
            "I32 with 3 bytes",
            Value::from("I32"),
            "needs 4 bytes, the record holds 3",
        ),
        (
            "an unknown dtype",
            Value::from("F128"),
            "unknown tensor dtype \"F128\"",
        ),
        (
            "quantized",
            Value::Map(vec![(Value::from("QFloat"), Value::Map(vec![]))]),
            "quantized",
        ),
    ];
    for (what, dtype, expected) in cases {
        let mut crafted = payload.clone();
        let mut module = field(&mut crafted, "module").clone();
        let mut all = tensors(&mut module);
        let tensor = if what == "I32 with 3 bytes" {
            let bias = all.remove(1);
            *field(bias, "bytes") = Value::Binary(vec![0; 3]);
            *field(bias, "shape") = Value::Array(vec![Value::from(1)]);
            bias
        } else {
            all.remove(0)
        };
        *field(tensor, "dtype") = dtype;
        *field(&mut crafted, "module") = module;
        let message = load_error(&dir, &crafted);
        assert!(
            message.contains("module.hidden") && message.contains(expected),
            "{what}: {message}"
        );
    }
    // A bool byte of 2 in the optimizer's record (bool tensors are 0 or 1).
    let mut crafted = payload.clone();
    let mut optimizer = field(&mut crafted, "optimizer").clone();
    let moment = tensors(&mut optimizer).remove(0);
    *field(moment, "dtype") = Value::Map(vec![(Value::from("Bool"), Value::from("Native"))]);
    *field(moment, "bytes") = Value::Binary(vec![2; 32]);
    *field(moment, "shape") = Value::Array(vec![Value::from(32)]);
    *field(&mut crafted, "optimizer") = optimizer;
    let message = load_error(&dir, &crafted);
    assert!(
        message.contains("boolean element 0 is stored as 2"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_enormous_shape_with_no_bytes_is_refused_without_allocating_it() {
    let (dir, payload) = saved_payload("huge");
    for shape in [vec![1u64 << 40, 1 << 20], vec![0, u64::MAX], vec![1; 17]] {
        let mut crafted = payload.clone();
        let mut module = field(&mut crafted, "module").clone();
        let weight = tensors(&mut module).remove(0);
        *field(weight, "shape") = Value::Array(shape.iter().map(|&d| Value::from(d)).collect());
        *field(weight, "bytes") = Value::Binary(Vec::new());
        *field(&mut crafted, "module") = module;
        let message = load_error(&dir, &crafted);
        assert!(
            message.contains("module.hidden.weight")
                && (message.contains("elements")
                    || message.contains("dimensions")
                    || message.contains("needs")),
            "{shape:?}: {message}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_optimizer_moment_of_a_consistent_but_wrong_shape_is_refused() {
    let (dir, payload) = saved_payload("moment");
    let mut crafted = payload.clone();
    let mut optimizer = field(&mut crafted, "optimizer").clone();
    // A moment becomes a consistent [4, 8] (bytes and shape agree; no parameter has that shape).
    let moment = tensors(&mut optimizer)
        .into_iter()
        .find(|t| matches!(&t["bytes"], Value::Binary(b) if b.len() == 128))
        .expect("a moment of hidden.weight ([2, 16], 128 bytes)");
    *field(moment, "shape") = Value::Array(vec![Value::from(4), Value::from(8)]);
    *field(&mut crafted, "optimizer") = optimizer;
    let message = load_error(&dir, &crafted);
    assert!(
        message.contains("optimizer state") && message.contains("has shape [4, 8], the parameter"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parameter_ids_that_burn_cannot_read_or_that_do_not_match_are_refused() {
    let (dir, payload) = saved_payload("ids");
    // An id burn's parser would panic on (it decodes to more than 8 bytes).
    let mut crafted = payload.clone();
    let module = field(&mut crafted, "module");
    let hidden = field(module, "hidden");
    *field(field(hidden, "weight"), "id") = Value::from("aaaaaaaaaaaaaaaaaaaaaaaa");
    let message = load_error(&dir, &crafted);
    assert!(
        message.contains("parameter id") && message.contains("module.hidden.weight"),
        "{message}"
    );
    // Two parameters with one id.
    let mut crafted = payload.clone();
    let module = field(&mut crafted, "module");
    let id = field(field(field(module, "hidden"), "weight"), "id").clone();
    *field(field(field(module, "hidden"), "bias"), "id") = id;
    let message = load_error(&dir, &crafted);
    assert!(message.contains("share the parameter id"), "{message}");
    // Optimizer state keyed by an id the model does not have.
    let mut crafted = payload.clone();
    if let Value::Map(entries) = field(&mut crafted, "optimizer") {
        entries[0].0 = Value::from("7777777777777");
    }
    let message = load_error(&dir, &crafted);
    assert!(
        message.contains("7777777777777") && message.contains("does not have"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deep_nesting_and_lengths_past_the_end_are_refused() {
    let (dir, payload) = saved_payload("nesting");
    let mut deep = Value::Nil;
    for _ in 0..1_000 {
        deep = Value::Array(vec![deep]);
    }
    let mut crafted = payload.clone();
    *field(&mut crafted, "schedule") = deep;
    let message = load_error(&dir, &crafted);
    assert!(message.contains("nest deeper"), "{message}");
    // An array header announcing 2^32-1 elements, with nothing behind it.
    let mut body = rmp_serde::to_vec_named(&payload).unwrap();
    body.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
    let mut file = Vec::new();
    file.extend_from_slice(&trainer_core::checkpoint::Header::for_payload(&body).to_bytes());
    file.extend_from_slice(&body);
    let path = dir.join("trailing.ckpt");
    std::fs::write(&path, &file).unwrap();
    let mut t = net_trainer(config(), 1.0, vec![]);
    let message = t.load_checkpoint(&path).unwrap_err().to_string();
    assert!(message.contains("follow the payload"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}
