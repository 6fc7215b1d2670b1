//! Loads that read each large tensor from the file straight into its own buffer
//! (`checkpoint/lent_load.rs`): a net wide enough that its tensors are read that way resumes
//! bit-exactly, and every check of a load out of the whole file still holds on them: the
//! checksum over the pieces, the scan's lengths, booleans stored as 0 or 1, the fallback for
//! a structure the skeleton cannot hold.

use crate::common;

use std::path::{Path, PathBuf};

use common::dropout_net::{parameter_bits, refused_load, wide_net_trainer, NetTrainer};
use common::payload::{field, tensors};
use rmpv::Value;
use serde::de::IgnoredAny;
use trainer_core::checkpoint::{encode, load_and_decode, HEADER_LEN};
use trainer_core::prelude::*;

/// Hidden units: the hidden layer's weight (2 × this), its bias and the output weight are each
/// at least 64 KiB, as are their two Adam moments: 9 tensors read apart.
const HIDDEN: usize = 16_384;

fn config(epochs: usize) -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(epochs))
        .with_batch_size(8)
        .with_seed(3)
}

fn wide(epochs: usize, salt: f32) -> NetTrainer {
    wide_net_trainer(config(epochs), HIDDEN, salt, vec![])
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-lent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A wide net trained one epoch, saved to `dir/run.ckpt`.
fn saved(dir: &Path) -> PathBuf {
    let mut t = wide(1, 0.0);
    t.fit().unwrap();
    let path = dir.join("run.ckpt");
    t.save_checkpoint(&path).unwrap();
    path
}

/// How many tensors a load of `path` read apart from the skeleton.
fn lent_tensors(path: &Path) -> usize {
    let (loaded, _, decoded) = load_and_decode::<IgnoredAny>(path).unwrap();
    decoded.unwrap();
    loaded.lent_tensors()
}

/// Loads `path` into a fresh wide trainer, which must refuse it untouched; returns the error.
fn load_error(path: &Path) -> String {
    refused_load(&mut wide(1, 1.0), path)
}

/// The payload of `path` as a MessagePack value, to tamper with.
fn payload(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    rmpv::decode::read_value(&mut &bytes[HEADER_LEN..]).unwrap()
}

/// A tensor record under the top-level field `name` whose bytes are at least `len` long: a
/// boolean one if there is one (so that a crafted one is found again), else the first.
fn large_tensor<'a>(payload: &'a mut Value, name: &str, len: usize) -> &'a mut Value {
    let mut large: Vec<&mut Value> = tensors(field(payload, name))
        .into_iter()
        .filter(|t| matches!(&t["bytes"], Value::Binary(b) if b.len() >= len))
        .collect();
    assert!(!large.is_empty(), "no tensor of {len} bytes under {name}");
    let at = large.iter().position(|t| t["dtype"].is_map()).unwrap_or(0);
    large.swap_remove(at)
}

#[test]
fn a_wide_net_resumes_bit_exactly_from_tensors_read_into_their_own_buffers() {
    let dir = temp_dir("resume");
    let path = saved(&dir);
    assert_eq!(lent_tensors(&path), 9, "the large tensors were read apart");

    let mut straight = wide(2, 0.0);
    straight.fit().unwrap();

    let mut resumed = wide(2, 5.0);
    resumed.load_checkpoint(&path).unwrap();
    assert_eq!(resumed.state().global_step, 13);
    resumed.fit().unwrap();
    assert!(
        parameter_bits(resumed.model()) == parameter_bits(straight.model()),
        "the resumed run differs from the straight one"
    );
    assert_eq!(resumed.state().global_step, straight.state().global_step);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_byte_inside_a_tensor_read_apart_or_between_them_fails_the_checksum() {
    let dir = temp_dir("flip");
    let path = saved(&dir);
    let bytes = std::fs::read(&path).unwrap();
    // The middle of the file lies inside one of the large tensors; the last byte is the
    // skeleton's (the payload's last fields are small).
    for at in [bytes.len() / 2, bytes.len() - 1] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x10;
        let flipped = dir.join(format!("flipped-{at}.ckpt"));
        std::fs::write(&flipped, &changed).unwrap();
        let message = load_error(&flipped);
        assert!(
            message.contains("checksum mismatch"),
            "byte {at}: {message}"
        );
    }
    let truncated = dir.join("truncated.ckpt");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let message = load_error(&truncated);
    assert!(message.contains("truncated or extended"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tensor_read_apart_with_fewer_bytes_than_its_shape_is_refused() {
    let dir = temp_dir("short");
    let path = saved(&dir);
    let mut crafted = payload(&path);
    let weight = large_tensor(&mut crafted, "module", 1 << 17);
    if let Value::Binary(bytes) = field(weight, "bytes") {
        bytes.truncate(bytes.len() - 4);
    }
    let file = dir.join("short.ckpt");
    std::fs::write(&file, encode(&crafted).unwrap()).unwrap();
    let message = load_error(&file);
    let needs = 2 * HIDDEN * 4;
    assert!(
        message.contains("module.hidden.weight")
            && message.contains(&format!(
                "needs {needs} bytes, the record holds {}",
                needs - 4
            )),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_boolean_read_apart_that_is_not_0_or_1_is_refused() {
    let dir = temp_dir("bool");
    let path = saved(&dir);
    let mut crafted = payload(&path);
    let moment = large_tensor(&mut crafted, "optimizer", 1 << 16);
    *field(moment, "shape") = Value::Array(vec![Value::from(1u64 << 17)]);
    *field(moment, "dtype") = Value::Map(vec![(Value::from("Bool"), Value::from("Native"))]);
    let file = dir.join("bool.ckpt");
    let mut flags = vec![1u8; 1 << 17];
    *field(moment, "bytes") = Value::Binary(flags.clone());
    std::fs::write(&file, encode(&crafted).unwrap()).unwrap();
    assert_eq!(lent_tensors(&file), 9, "valid flags are read apart as well");
    flags[100_000] = 2;
    let moment = large_tensor(&mut crafted, "optimizer", 1 << 17);
    *field(moment, "bytes") = Value::Binary(flags);
    std::fs::write(&file, encode(&crafted).unwrap()).unwrap();
    let message = load_error(&file);
    assert!(
        message.contains("optimizer") && message.contains("boolean element 100000 is stored as 2"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_large_byte_string_outside_a_tensor_record_is_loaded_from_the_whole_file() {
    let dir = temp_dir("fallback");
    let path = saved(&dir);
    let mut crafted = payload(&path);
    let Value::Map(fields) = &mut crafted else {
        panic!("the payload is not a map")
    };
    fields.push((Value::from("notes"), Value::Binary(vec![7; 1 << 17])));
    let file = dir.join("notes.ckpt");
    std::fs::write(&file, encode(&crafted).unwrap()).unwrap();
    assert_eq!(lent_tensors(&file), 0, "loaded out of the whole file");
    // A field the payload does not know is skipped, as before: the load succeeds.
    let mut t = wide(1, 1.0);
    t.load_checkpoint(&file).unwrap();
    let mut original = wide(1, 2.0);
    original.load_checkpoint(&path).unwrap();
    assert!(parameter_bits(t.model()) == parameter_bits(original.model()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_large_byte_string_longer_than_the_file_is_refused_as_damage() {
    let dir = temp_dir("overlong");
    let path = saved(&dir);
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, &payload(&path)).unwrap();
    // The hidden layer's weight: a 32-bit byte string length of 131072; claim 2 GiB instead.
    let at = body
        .windows(5)
        .position(|w| w == [0xc6, 0x00, 0x02, 0x00, 0x00])
        .expect("the weight's header");
    body[at + 1] = 0x7f;
    let mut file = trainer_core::checkpoint::Header::for_payload(&body)
        .to_bytes()
        .to_vec();
    file.extend_from_slice(&body);
    let crafted = dir.join("overlong.ckpt");
    std::fs::write(&crafted, &file).unwrap();
    let message = load_error(&crafted);
    assert!(message.contains("ends inside a value"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}
