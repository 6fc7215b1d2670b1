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
    let mut prefix = Vec::with_capacity(HEADER_LEN);
    (&mut reader)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(io)?;
    let header = check_header(&prefix, len, &origin)?;
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

/// The checks of the header's bytes (`prefix`: up to the first [`HEADER_LEN`] bytes of a file of
/// `total_len` bytes): magic, major version, payload length.
fn check_header(prefix: &[u8], total_len: u64, origin: &str) -> Result<Header> {
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

fn check_checksum(header: &Header, actual: u32, origin: &str) -> Result<()> {
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
mod tests {
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
}
