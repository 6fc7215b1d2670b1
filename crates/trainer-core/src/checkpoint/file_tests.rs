//! The file format: round trip, damage of every kind is a clear error, atomic writes.

use serde::{Deserialize, Serialize};

use super::{decode, encode, read};
use crate::checkpoint::{FORMAT_MAJOR, HEADER_LEN, MAGIC};
use crate::error::TrainerError;
use crate::fs::write_atomic;
use crate::state::TrainingState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payload {
    state: TrainingState,
    weights: Vec<f32>,
    note: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct OtherModel {
    layers: Vec<Vec<f64>>,
}

fn payload() -> Payload {
    Payload {
        state: TrainingState {
            epoch: 3,
            global_step: 450,
            ..Default::default()
        },
        weights: (0..1000).map(|i| (i as f32 * 0.37).sin()).collect(),
        note: "checkpoint".into(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_payload_round_trips_bit_for_bit() {
    let bytes = encode(&payload()).unwrap();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), FORMAT_MAJOR);
    assert_eq!(
        u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize,
        bytes.len() - HEADER_LEN
    );
    let back: Payload = decode(&bytes, "mem").unwrap();
    assert_eq!(back, payload());
}

fn damaged(result: Result<Payload, TrainerError>) -> String {
    match result {
        Err(e @ TrainerError::CheckpointDamaged { .. })
        | Err(e @ TrainerError::CheckpointVersion { .. }) => e.to_string(),
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(_) => panic!("damaged bytes were accepted"),
    }
}

#[test]
fn a_file_truncated_at_any_tenth_is_refused() {
    let bytes = encode(&payload()).unwrap();
    for tenth in 0..10 {
        let cut = bytes.len() * tenth / 10;
        let message = damaged(decode(&bytes[..cut], "ckpt"));
        assert!(message.contains("truncated"), "cut at {cut}: {message}");
    }
}

#[test]
fn every_bit_flipped_in_the_header_is_caught() {
    let bytes = encode(&payload()).unwrap();
    for bit in 0..HEADER_LEN * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let message = damaged(decode(&bad, "ckpt"));
        let expected = match bit / 8 {
            0..=7 => "magic",
            8..=9 => "version",
            12..=19 => "truncated or extended",
            _ => "checksum",
        };
        assert!(message.contains(expected), "bit {bit}: {message}");
    }
}

#[test]
fn a_bit_flipped_anywhere_in_the_payload_is_caught() {
    let bytes = encode(&payload()).unwrap();
    for byte in (HEADER_LEN..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[byte] ^= 0x10;
        let message = damaged(decode(&bad, "ckpt"));
        assert!(message.contains("checksum"), "byte {byte}: {message}");
    }
}

#[test]
fn wrong_magic_says_it_is_not_a_checkpoint() {
    let mut bytes = encode(&payload()).unwrap();
    bytes[..8].copy_from_slice(b"PK\x03\x04zip!");
    let message = damaged(decode(&bytes, "model.zip"));
    assert!(
        message.contains("model.zip") && message.contains("not a trainer checkpoint"),
        "{message}"
    );
}

#[test]
fn a_future_major_version_is_refused_naming_both_versions() {
    let mut bytes = encode(&payload()).unwrap();
    bytes[8..10].copy_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
    bytes[10..12].copy_from_slice(&0u16.to_le_bytes());
    match decode::<Payload>(&bytes, "future.ckpt") {
        Err(TrainerError::CheckpointVersion {
            found, supported, ..
        }) => {
            assert_eq!(found, format!("{}.0", FORMAT_MAJOR + 1));
            assert_eq!(supported, FORMAT_MAJOR);
        }
        other => panic!("expected a version error, got {other:?}"),
    }
    let message = damaged(decode(&bytes, "future.ckpt"));
    assert!(
        message.contains(&format!("version {}.0", FORMAT_MAJOR + 1))
            && message.contains(&format!("reads version {FORMAT_MAJOR}")),
        "{message}"
    );
}

#[test]
fn a_checkpoint_of_another_shape_does_not_decode() {
    let bytes = encode(&payload()).unwrap();
    let err = decode::<OtherModel>(&bytes, "other.ckpt")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other.ckpt") && err.contains("does not decode"),
        "{err}"
    );
}

#[test]
fn atomic_writes_replace_the_file_and_leave_no_temporary() {
    let dir = temp_dir("atomic");
    let path = dir.join("epoch-0003-step-000450.ckpt");
    write_atomic(&path, &encode(&payload()).unwrap()).unwrap();
    let mut second = payload();
    second.note = "second".into();
    write_atomic(&path, &encode(&second).unwrap()).unwrap();
    assert_eq!(read::<Payload>(&path).unwrap(), second);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("epoch-0003-step-000450.ckpt")]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_write_leaves_the_target_untouched_and_no_temporary() {
    let dir = temp_dir("failed");
    // The target is a non-empty folder: the final rename fails, whoever runs the test.
    let target = dir.join("latest");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"kept").unwrap();
    let err = write_atomic(&target, &encode(&payload()).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("latest"), "{err}");
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"kept");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("latest")],
        "the temporary file is removed"
    );
    // A folder that does not exist is an error naming it.
    let missing = dir.join("missing").join("a.ckpt");
    let err = write_atomic(&missing, b"x").unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reading_a_missing_file_names_it() {
    let err = read::<Payload>(std::path::Path::new("/nonexistent/run/latest.ckpt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/run/latest.ckpt"), "{err}");
}

#[test]
fn work_beside_the_checksum_counts_only_when_the_checksum_matches() {
    use super::verify_beside;
    let bytes = encode(&payload()).unwrap();
    let (header, read) = verify_beside(&bytes, "mem", || decode_payload(&bytes)).unwrap();
    assert_eq!(header.payload_len as usize, bytes.len() - HEADER_LEN);
    assert_eq!(read.unwrap(), payload());

    // A flipped bit in the note: the payload still decodes (to other text), the file is damaged.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 3;
    flipped[at] ^= 0x01;
    assert!(decode_payload(&flipped).is_ok());
    let error = verify_beside(&flipped, "mem", || decode_payload(&flipped)).unwrap_err();
    assert!(error.to_string().contains("checksum mismatch"), "{error}");

    // A damaged header is refused before the work starts.
    let mut other = bytes.clone();
    other[0] = b'X';
    let mut ran = false;
    let error = verify_beside(&other, "mem", || ran = true).unwrap_err();
    assert!(error.to_string().contains("magic"), "{error}");
    assert!(!ran);
}

fn decode_payload(bytes: &[u8]) -> Result<Payload, rmp_serde::decode::Error> {
    rmp_serde::from_slice(&bytes[HEADER_LEN..])
}
