//! A checkpoint load with one copy of each tensor: the file's structure is read into a skeleton
//! (`skeleton.rs`), scanned, and each large tensor's bytes are then read from the file straight
//! into memory of the tensor's element type, which burn's decoder takes as the tensor's buffer
//! (the patched `burn-backend`'s `decode_with_lent_buffers`). The checks are the same as a load
//! out of the file's bytes ([`scan_and_decode`]): header, checksum (of the pieces, combined),
//! the scan, booleans stored as 0 or 1 (in the buffers), the decoding under a panic guard; a file whose
//! structure the skeleton cannot hold (a large byte string outside a tensor record, bytes that
//! are not MessagePack) is loaded the other way, which reports it as it always did.

use std::collections::BTreeMap;
use std::fs::File;
#[cfg(not(unix))]
use std::io::Read;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use burn::tensor::Bytes;
use serde::de::DeserializeOwned;

use super::file::{
    check_checksum, decode_guarded, read_checkpoint_bytes, read_header, scan_and_decode,
};
use super::header::HEADER_LEN;
use super::scan::scan_skeleton;
use super::scanned::{LentBin, LentBins, PayloadScan, RecordSource};
use super::skeleton::{read_skeleton, Skeleton};
use super::MAX_CHECKPOINT_BYTES;
use crate::error::{Result, TrainerError};
use crate::fs::open_regular_file;

/// A checkpoint's bytes as a load read them: the whole file, or its skeleton and the buffers
/// its tensors were read into (now the decoded tensors' own).
#[derive(Debug)]
pub struct LoadedPayload {
    bytes: Vec<u8>,
    lent: LentBins,
}

impl LoadedPayload {
    /// The payload's bytes as read (the skeleton's, when tensors were read apart).
    pub fn payload(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The source of the record decoded from the payload's top-level field `name`, for the
    /// record checks ([`record_tensors`](super::record_tensors)).
    pub fn source<'a>(&'a self, scan: &'a PayloadScan, name: &str) -> Option<RecordSource<'a>> {
        scan.source_lent(self.payload(), &self.lent, name)
    }

    /// How many tensors were read straight into buffers of their own.
    pub fn lent_tensors(&self) -> usize {
        self.lent.0.len()
    }
}

/// A decoded payload, what the load read and the scan of it; the decoding's own error is left
/// to the caller to name, as [`scan_and_decode`]'s.
pub type LoadedAndDecoded<T> = (
    LoadedPayload,
    PayloadScan,
    std::result::Result<T, rmp_serde::decode::Error>,
);

/// Reads, checks and decodes the checkpoint file at `path` as `T`, reading each large tensor
/// once, from the file into its own buffer. Checked as [`scan_and_decode`] checks, in the same
/// order of errors: a damaged file is reported as damaged, whatever its structure.
pub fn load_and_decode<T: DeserializeOwned>(path: &Path) -> Result<LoadedAndDecoded<T>> {
    let origin = path.display().to_string();
    let io = |source| TrainerError::Io {
        action: "reading checkpoint",
        path: path.to_path_buf(),
        source,
    };
    let (mut file, len) = open_regular_file(path, MAX_CHECKPOINT_BYTES, "reading checkpoint")?;
    let header = read_header(&mut file, len, path)?;
    let skeleton = match read_skeleton(&mut file, &header).map_err(io)? {
        Ok(skeleton) => skeleton,
        Err(_) => return load_whole(path),
    };
    let lengths = skeleton
        .bins
        .iter()
        .map(|bin| (bin.at - HEADER_LEN, bin.len))
        .collect::<BTreeMap<_, _>>();
    let scan = match scan_skeleton(&skeleton.bytes[HEADER_LEN..], &lengths) {
        Ok(scan) if lent_are_tensors(&scan, &skeleton) => scan,
        _ => return load_whole(path),
    };
    let (buffers, checksum) = read_lent(&mut file, &skeleton, &scan).map_err(io)?;
    check_checksum(&header, checksum, &origin)?;
    check_elements(&scan, &buffers).map_err(|detail| TrainerError::CheckpointDamaged {
        path: origin.clone(),
        detail,
    })?;
    let Skeleton { bytes, bins, .. } = skeleton;
    let mut lent = LentBins::default();
    let mut lent_buffers = BTreeMap::new();
    for (bin, buffer) in bins.into_iter().zip(buffers) {
        let key = bytes[bin.at..].as_ptr() as usize;
        let entry = LentBin {
            header: bin.header,
            address: buffer.as_ptr() as usize,
            len: buffer.len(),
        };
        lent.0.insert(key, entry);
        lent_buffers.insert(key, buffer);
    }
    let (decoded, _unused) = burn_backend::decode_with_lent_buffers(lent_buffers, || {
        decode_guarded::<T>(&bytes[HEADER_LEN..], &origin)
    });
    Ok((LoadedPayload { bytes, lent }, scan, decoded?))
}

/// The load out of the whole file's bytes, for a file whose structure the skeleton cannot hold.
fn load_whole<T: DeserializeOwned>(path: &Path) -> Result<LoadedAndDecoded<T>> {
    let bytes = read_checkpoint_bytes(path)?;
    let (scan, decoded) = scan_and_decode::<T>(&bytes, &path.display().to_string())?;
    let loaded = LoadedPayload {
        bytes,
        lent: LentBins::default(),
    };
    Ok((loaded, scan, decoded))
}

/// Whether every byte string the skeleton left out is a tensor record's, the scan's
/// [`PayloadScan::lent`] in the same order: only those are read apart.
fn lent_are_tensors(scan: &PayloadScan, skeleton: &Skeleton) -> bool {
    scan.lent.len() == skeleton.bins.len()
        && scan
            .lent
            .iter()
            .zip(&skeleton.bins)
            .all(|(tensor, bin)| tensor.at + HEADER_LEN == bin.at)
}

/// Reads each byte string the skeleton left out into a buffer of its tensor's element type,
/// while another thread computes the checksum of each buffer read; returns the buffers and the
/// checksum of the whole file (the skeleton's pieces and the buffers, combined in file order).
fn read_lent(
    file: &mut File,
    skeleton: &Skeleton,
    scan: &PayloadScan,
) -> std::io::Result<(Vec<Bytes>, u32)> {
    if skeleton.bins.is_empty() {
        let whole = skeleton.pieces.first().cloned().unwrap_or_default();
        return Ok((Vec::new(), whole.finalize()));
    }
    let (sender, receiver) = std::sync::mpsc::channel::<Bytes>();
    let hashed = std::thread::scope(
        |scope| -> std::io::Result<Vec<(Bytes, crc32fast::Hasher)>> {
            let hashing = scope.spawn(move || {
                receiver
                    .into_iter()
                    .map(|bytes| {
                        let mut hasher = crc32fast::Hasher::new();
                        hasher.update(&bytes);
                        (bytes, hasher)
                    })
                    .collect::<Vec<_>>()
            });
            let mut read = Ok(());
            for (bin, tensor) in skeleton.bins.iter().zip(&scan.lent) {
                match read_typed(file, bin.offset, bin.len, tensor.dtype.size) {
                    Ok(buffer) => {
                        // Fails only if the hashing thread panicked: the join below says so.
                        if sender.send(buffer).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        read = Err(e);
                        break;
                    }
                }
            }
            drop(sender);
            let hashed = hashing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read.map(|()| hashed)
        },
    )?;
    let mut pieces = skeleton.pieces.iter();
    let mut total = pieces.next().cloned().unwrap_or_default();
    let mut buffers = Vec::with_capacity(hashed.len());
    for ((buffer, checksum), piece) in hashed.into_iter().zip(pieces) {
        total.combine(&checksum);
        total.combine(piece);
        buffers.push(buffer);
    }
    Ok((buffers, total.finalize()))
}

/// Checks the elements of every tensor read apart as the scan checks those it sees
/// (`TensorDtype::check_elements`: native booleans are 0 or 1).
fn check_elements(scan: &PayloadScan, buffers: &[Bytes]) -> std::result::Result<(), String> {
    for (tensor, buffer) in scan.lent.iter().zip(buffers) {
        tensor
            .dtype
            .check_elements(buffer)
            .map_err(|what| format!("at `{}`: {what}", tensor.path))?;
    }
    Ok(())
}

/// `len` bytes of `file` from `offset`, read into a new buffer of `element_size`-byte elements
/// (so that its alignment is the element's), with no copy.
fn read_typed(
    file: &mut File,
    offset: u64,
    len: u64,
    element_size: usize,
) -> std::io::Result<Bytes> {
    fn read<E: bytemuck::Pod + Send + Sync>(
        file: &mut File,
        offset: u64,
        len: u64,
    ) -> std::io::Result<Bytes> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        // The scan checked that the length is a whole number of elements.
        let count = len / std::mem::size_of::<E>();
        file.seek(SeekFrom::Start(offset))?;
        let elements = read_elements::<E>(file, count)?;
        Ok(Bytes::from_elems(elements))
    }
    match element_size {
        8 => read::<u64>(file, offset, len),
        4 => read::<u32>(file, offset, len),
        2 => read::<u16>(file, offset, len),
        _ => read::<u8>(file, offset, len),
    }
}

/// `count` elements read from `file`'s position into fresh memory, which is not zeroed first
/// (a pass over the buffer that would cost as much as the read).
#[cfg(unix)]
fn read_elements<E: bytemuck::Pod>(file: &mut File, count: usize) -> std::io::Result<Vec<E>> {
    use std::os::unix::io::AsRawFd;
    let mut elements = Vec::<E>::with_capacity(count);
    let len = count * std::mem::size_of::<E>();
    let start = elements.as_mut_ptr().cast::<u8>();
    let mut filled = 0;
    while filled < len {
        let chunk = (len - filled).min(1 << 30);
        // SAFETY: writes at most `chunk` bytes at `start + filled`, inside the vector's
        // capacity of `len` bytes; the memory is only written, by the kernel.
        let n = unsafe { libc::read(file.as_raw_fd(), start.add(filled).cast(), chunk) };
        match n {
            0 => break,
            n if n > 0 => filled += n as usize,
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    if filled != len {
        return Err(changed_while_read(filled, len));
    }
    // SAFETY: all `len` bytes, `count` elements, were written above, and any bytes are a
    // valid `E` (`Pod`).
    unsafe { elements.set_len(count) };
    Ok(elements)
}

/// `count` elements read from `file`'s position (zeroed first: `Read` fills initialised memory).
#[cfg(not(unix))]
fn read_elements<E: bytemuck::Pod>(file: &mut File, count: usize) -> std::io::Result<Vec<E>> {
    let mut elements = vec![E::zeroed(); count];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut elements);
    let len = bytes.len();
    let mut filled = 0;
    while filled < len {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if filled != len {
        return Err(changed_while_read(filled, len));
    }
    Ok(elements)
}

fn changed_while_read(filled: usize, len: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("the file changed while it was read ({filled} of {len} bytes of a tensor)"),
    )
}
