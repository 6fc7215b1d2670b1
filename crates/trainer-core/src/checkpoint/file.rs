use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use super::header::{Header, FORMAT_MAJOR, HEADER_LEN, MAGIC};
use super::scan::{scan_payload, PayloadScan};
use crate::error::{Result, TrainerError};
use crate::fs::read_regular_file;

/// The bytes of a checkpoint file holding `payload` (MessagePack with named fields).
pub fn encode<T: Serialize>(payload: &T) -> Result<Vec<u8>> {
    let body = rmp_serde::to_vec_named(payload).map_err(|e| TrainerError::CheckpointDamaged {
        path: "<new checkpoint>".into(),
        detail: format!("cannot encode the payload: {e}"),
    })?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&Header::for_payload(&body).to_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Checks and decodes the bytes of a checkpoint file; `origin` names them in errors (a path).
///
/// Checked in order: the magic bytes, the format version (another major is refused, naming both
/// versions), the length (a truncated or extended file), the checksum, then the payload's shape.
/// Nothing is allocated from a length read in the file, and no input makes it panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], origin: &str) -> Result<T> {
    decode_checked(bytes, origin).map(|(payload, _)| payload)
}

/// [`decode`], also returning the scan of the payload's tensors.
///
/// Before serde sees the payload, [`scan_payload`] walks it and checks every tensor record
/// (dtype, shape, byte length) and parameter id, so that burn's decoding, which trusts them,
/// cannot panic on them. The decoding itself runs inside a panic guard as a last net.
pub fn decode_checked<T: DeserializeOwned>(bytes: &[u8], origin: &str) -> Result<(T, PayloadScan)> {
    verify(bytes, origin)?;
    let damaged = |detail: String| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail,
    };
    let payload = &bytes[HEADER_LEN..];
    let scan = scan_payload(payload).map_err(damaged)?;
    let decoded = std::panic::catch_unwind(|| rmp_serde::from_slice::<T>(payload))
        .map_err(|_| damaged("the payload holds data the decoder cannot read".into()))?;
    let payload = decoded.map_err(|e| damaged(format!("the payload does not decode: {e}")))?;
    Ok((payload, scan))
}

/// Checks the header and checksum of a checkpoint file's bytes (everything [`decode`] checks
/// before the payload) and returns the header.
pub fn verify(bytes: &[u8], origin: &str) -> Result<Header> {
    let damaged = |detail: String| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail,
    };
    if bytes.len() < HEADER_LEN {
        return Err(damaged(format!(
            "{} bytes, fewer than the {HEADER_LEN}-byte header: the file is truncated or not a checkpoint",
            bytes.len()
        )));
    }
    if bytes[..8] != MAGIC {
        return Err(damaged(format!(
            "it does not start with the magic bytes {:?}: not a trainer checkpoint",
            String::from_utf8_lossy(&MAGIC)
        )));
    }
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(&bytes[..HEADER_LEN]);
    let header = Header::from_bytes(&raw);
    if header.major != FORMAT_MAJOR {
        return Err(TrainerError::CheckpointVersion {
            path: origin.to_string(),
            found: format!("{}.{}", header.major, header.minor),
            supported: FORMAT_MAJOR,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != header.payload_len {
        return Err(damaged(format!(
            "the header announces {} payload bytes, the file holds {}: truncated or extended",
            header.payload_len,
            payload.len()
        )));
    }
    let actual = header.compute_checksum(payload);
    if actual != header.checksum {
        return Err(damaged(format!(
            "checksum mismatch (stored {:08x}, computed {actual:08x}): the bytes were altered",
            header.checksum
        )));
    }
    Ok(header)
}

/// Reads and decodes the checkpoint file at `path`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_checkpoint_bytes(path)?;
    decode(&bytes, &path.display().to_string())
}

/// The largest checkpoint file read (a size cap against a path that names something endless).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 40;

/// The bytes of the checkpoint file at `path`: a regular file (not a device, a fifo or a
/// folder; a symlink is followed to one) of at most [`MAX_CHECKPOINT_BYTES`].
pub fn read_checkpoint_bytes(path: &Path) -> Result<Vec<u8>> {
    read_regular_file(path, MAX_CHECKPOINT_BYTES, "reading checkpoint")
}
