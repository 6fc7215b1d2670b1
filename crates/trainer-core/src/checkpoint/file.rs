use std::io::Write;
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use super::header::{Header, FORMAT_MAJOR, HEADER_LEN, MAGIC};
use crate::error::{Result, TrainerError};

/// How the temporary files of [`write_atomic`] start (they end in `.tmp`).
pub const TEMPORARY_PREFIX: &str = ".checkpoint-";

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
    verify(bytes, origin)?;
    rmp_serde::from_slice(&bytes[HEADER_LEN..]).map_err(|e| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail: format!("the payload does not decode: {e}"),
    })
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
    let bytes = std::fs::read(path).map_err(|source| TrainerError::Io {
        action: "reading checkpoint",
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes, &path.display().to_string())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename over
/// `path`, fsync of the folder. On any failure `path` keeps its old content (or stays absent)
/// and the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let io = |action: &'static str, at: &Path| {
        let at = at.to_path_buf();
        move |source| TrainerError::Io { action, path: at, source }
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(io("creating a temporary file in", folder))?;
    temporary.write_all(bytes).map_err(io("writing", temporary.path()))?;
    temporary.as_file().sync_all().map_err(io("syncing", temporary.path()))?;
    temporary
        .persist(path)
        .map_err(|e| TrainerError::Io { action: "renaming a temporary file onto", path: path.to_path_buf(), source: e.error })?;
    sync_folder(folder).map_err(io("syncing folder", folder))
}

/// Makes a rename durable. Folders can be opened and synced on Unix; elsewhere the rename is
/// left to the file system.
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(folder)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = folder;
        Ok(())
    }
}
