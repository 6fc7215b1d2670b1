use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use super::header::{Header, FORMAT_MAJOR, HEADER_LEN, MAGIC};
use super::scan::scan_payload;
use super::scanned::PayloadScan;
use crate::error::{Result, TrainerError};
use crate::fs::read_regular_file;

/// The bytes of a checkpoint file holding `payload` (MessagePack with named fields).
pub fn encode<T: Serialize>(payload: &T) -> Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    write_payload(payload, &mut bytes, Path::new("<memory>"))?;
    Ok(bytes.into_inner())
}

/// Writes the checkpoint file holding `payload` into `out` from its current position and
/// returns the header written. The payload streams through the checksum into `out` as it is
/// encoded (tensor bytes go from the record to the file, with no buffer of the whole payload);
/// the header, which needs the payload's length and checksum, is written last, in front.
/// `origin` names the file in errors.
pub fn write_payload<T, W>(payload: &T, out: &mut W, origin: &Path) -> Result<Header>
where
    T: Serialize,
    W: Write + Seek + ?Sized,
{
    let io = |source| TrainerError::Io {
        action: "writing checkpoint",
        path: origin.to_path_buf(),
        source,
    };
    let start = out.stream_position().map_err(io)?;
    out.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
    let (hasher, len) = {
        let mut sink = ChecksumWriter {
            inner: BufWriter::with_capacity(1 << 16, &mut *out),
            hasher: crc32fast::Hasher::new(),
            len: 0,
            failure: None,
        };
        if let Err(e) = rmp_serde::encode::write_named(&mut sink, payload) {
            return Err(match sink.failure.take() {
                Some(source) => io(source),
                None => TrainerError::CheckpointDamaged {
                    path: origin.display().to_string(),
                    detail: format!("cannot encode the payload: {e}"),
                },
            });
        }
        sink.inner.flush().map_err(io)?;
        (sink.hasher, sink.len)
    };
    let header = Header::for_streamed_payload(len, &hasher);
    out.seek(SeekFrom::Start(start)).map_err(io)?;
    out.write_all(&header.to_bytes()).map_err(io)?;
    out.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(header)
}

/// Passes bytes on while computing their CRC-32 and counting them; keeps the first I/O error,
/// which the encoder's own error type would otherwise blur.
struct ChecksumWriter<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
    failure: Option<std::io::Error>,
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                if self.failure.is_none() {
                    self.failure = Some(std::io::Error::new(e.kind(), e.to_string()));
                }
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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
    let (scan, decoded) = scan_and_decode::<T>(bytes, origin)?;
    let payload = decoded.map_err(|e| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail: format!("the payload does not decode: {e}"),
    })?;
    Ok((payload, scan))
}

/// The checks of [`decode_checked`] (header, checksum, scan) and serde's decoding of the payload
/// as `T`, whose error is left to the caller to name: a payload that is not a `T` is damage to a
/// reader that expects any checkpoint, a mismatch to a trainer that expects its own model's. The
/// scan and the decoding run beside the checksum ([`verify_beside`]).
pub fn scan_and_decode<T: DeserializeOwned>(
    bytes: &[u8],
    origin: &str,
) -> Result<(
    PayloadScan,
    std::result::Result<T, rmp_serde::decode::Error>,
)> {
    let damaged = |detail: String| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail,
    };
    let (_, decoded) = verify_beside(bytes, origin, || {
        let payload = &bytes[HEADER_LEN..];
        let scan = scan_payload(payload).map_err(damaged)?;
        Ok((scan, decode_guarded::<T>(payload, origin)?))
    })?;
    decoded
}

/// serde's decoding of a scanned `payload` as `T` inside a panic guard (the last net: the scan
/// has checked what burn's decoding trusts); a panic is damage, serde's error the caller's to
/// name.
pub(super) fn decode_guarded<T: DeserializeOwned>(
    payload: &[u8],
    origin: &str,
) -> Result<std::result::Result<T, rmp_serde::decode::Error>> {
    std::panic::catch_unwind(|| rmp_serde::from_slice::<T>(payload)).map_err(|_| {
        TrainerError::CheckpointDamaged {
            path: origin.to_string(),
            detail: "the payload holds data the decoder cannot read".into(),
        }
    })
}

/// [`verify`], with `work` (the payload's scan and decoding) running beside the checksum, which
/// is computed on another thread: a pass over the whole file that costs about as much as a copy
/// of it. The header is checked before `work` starts, and `work`'s result is returned only when
/// the checksum matches, so that a damaged file is reported as damaged whatever `work` made of
/// its bytes. `work` only reads: nothing reaches burn before the checksum is known.
pub fn verify_beside<T>(
    bytes: &[u8],
    origin: &str,
    work: impl FnOnce() -> T,
) -> Result<(Header, T)> {
    let header = check_header(
        &bytes[..bytes.len().min(HEADER_LEN)],
        bytes.len() as u64,
        origin,
    )?;
    let (checksum, result) = std::thread::scope(|scope| {
        let checksum = scope.spawn(|| header.compute_checksum(&bytes[HEADER_LEN..]));
        let result = work();
        (checksum.join(), result)
    });
    let checksum = checksum.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    check_checksum(&header, checksum, origin)?;
    Ok((header, result))
}

/// Checks the header and checksum of a checkpoint file's bytes (everything [`decode`] checks
/// before the payload) and returns the header.
pub fn verify(bytes: &[u8], origin: &str) -> Result<Header> {
    let header = check_header(
        &bytes[..bytes.len().min(HEADER_LEN)],
        bytes.len() as u64,
        origin,
    )?;
    check_checksum(
        &header,
        header.compute_checksum(&bytes[HEADER_LEN..]),
        origin,
    )?;
    Ok(header)
}

/// [`verify`] for the file at `path`, read in pieces: the whole file is never in memory.
pub fn verify_file(path: &Path) -> Result<Header> {
    use std::io::Read;
    let origin = path.display().to_string();
    let io = |source| TrainerError::Io {
        action: "reading checkpoint",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file.take(len));
    let header = read_header(&mut reader, len, path)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header.to_bytes()[..20]);
    let mut read = 0u64;
    loop {
        let chunk = std::io::BufRead::fill_buf(&mut reader).map_err(io)?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        read += chunk.len() as u64;
        let n = chunk.len();
        std::io::BufRead::consume(&mut reader, n);
    }
    if read != header.payload_len {
        return Err(TrainerError::CheckpointDamaged {
            path: origin,
            detail: format!(
                "the file changed while it was read ({read} payload bytes, {} announced)",
                header.payload_len
            ),
        });
    }
    check_checksum(&header, hasher.finalize(), &origin)?;
    Ok(header)
}

/// Reads the header at the start of `file` (a file of `len` bytes at `path`) and checks it as
/// [`check_header`] does.
pub(super) fn read_header(file: &mut impl std::io::Read, len: u64, path: &Path) -> Result<Header> {
    use std::io::Read;
    let mut prefix = Vec::with_capacity(HEADER_LEN);
    file.take(HEADER_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|source| TrainerError::Io {
            action: "reading checkpoint",
            path: path.to_path_buf(),
            source,
        })?;
    check_header(&prefix, len, &path.display().to_string())
}

/// The checks of the header's bytes (`prefix`: up to the first [`HEADER_LEN`] bytes of a file of
/// `total_len` bytes): magic, major version, payload length.
pub(super) fn check_header(prefix: &[u8], total_len: u64, origin: &str) -> Result<Header> {
    let damaged = |detail: String| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail,
    };
    if prefix.len() < HEADER_LEN {
        return Err(damaged(format!(
            "{total_len} bytes, fewer than the {HEADER_LEN}-byte header: the file is truncated or not a checkpoint"
        )));
    }
    if prefix[..8] != MAGIC {
        return Err(damaged(format!(
            "it does not start with the magic bytes {:?}: not a trainer checkpoint",
            String::from_utf8_lossy(&MAGIC)
        )));
    }
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(&prefix[..HEADER_LEN]);
    let header = Header::from_bytes(&raw);
    if header.major != FORMAT_MAJOR {
        return Err(TrainerError::CheckpointVersion {
            path: origin.to_string(),
            found: format!("{}.{}", header.major, header.minor),
            supported: FORMAT_MAJOR,
        });
    }
    let payload_len = total_len - HEADER_LEN as u64;
    if payload_len != header.payload_len {
        return Err(damaged(format!(
            "the header announces {} payload bytes, the file holds {payload_len}: truncated or extended",
            header.payload_len
        )));
    }
    Ok(header)
}

pub(super) fn check_checksum(header: &Header, actual: u32, origin: &str) -> Result<()> {
    if actual != header.checksum {
        return Err(TrainerError::CheckpointDamaged {
            path: origin.to_string(),
            detail: format!(
                "checksum mismatch (stored {:08x}, computed {actual:08x}): the bytes were altered",
                header.checksum
            ),
        });
    }
    Ok(())
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

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
