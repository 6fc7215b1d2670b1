//! The first pass of a checkpoint load that reads each tensor straight into memory of its own:
//! the file's MessagePack structure is read in order, every large byte string (a tensor's
//! bytes) is stepped over and left out, and what remains is the skeleton that the scan and the
//! decoder read. The byte strings are read by `lent_load.rs` once the scan has said what they
//! hold.
//!
//! The walk trusts no length: it never allocates more than the file holds, keeps no stack (a
//! count of the values still to read), and stops at the payload's end.

use std::io::{BufReader, Read, Seek};

use super::header::{Header, HEADER_LEN};

/// Byte strings at least this long are left out of the skeleton (smaller ones are copied:
/// a read of their own would cost more than the copy).
pub(super) const LENT_MIN_BYTES: u64 = 1 << 16;

/// The file's header and payload without the content of its large byte strings.
pub(super) struct Skeleton {
    /// The header's bytes, then the payload, each large byte string written as an empty one
    /// (`c4 00`).
    pub bytes: Vec<u8>,
    /// The byte strings left out, in file order.
    pub bins: Vec<SkeletonBin>,
    /// The checksum of the file's bytes between the byte strings left out (the header's first
    /// 20 bytes first, each byte string's own header with the bytes before it), in order: one
    /// more than `bins`.
    pub pieces: Vec<crc32fast::Hasher>,
}

/// A byte string left out of a [`Skeleton`].
pub(super) struct SkeletonBin {
    /// The offset in `Skeleton::bytes` where its empty stand-in's content would start.
    pub at: usize,
    /// Where its content starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Its header as the file wrote it.
    pub header: Vec<u8>,
}

/// Reads the skeleton of the payload that follows `header` in `file` (positioned just after
/// the header). `Ok(Err(_))` says why the bytes are not a MessagePack value that ends with the
/// payload; `Err` is an I/O error.
pub(super) fn read_skeleton<R: Read + Seek>(
    file: R,
    header: &Header,
) -> std::io::Result<Result<Skeleton, String>> {
    let mut first = crc32fast::Hasher::new();
    first.update(&header.to_bytes()[..20]);
    let mut walk = SkeletonWalk {
        input: BufReader::with_capacity(1 << 16, file),
        offset: HEADER_LEN as u64,
        end: HEADER_LEN as u64 + header.payload_len,
        skeleton: Skeleton {
            bytes: header.to_bytes().to_vec(),
            bins: Vec::new(),
            pieces: Vec::new(),
        },
        piece: first,
    };
    // Values still to read: the payload is one; an array or map adds its items.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let items = match walk.value()? {
            Ok(items) => items,
            Err(detail) => return Ok(Err(detail)),
        };
        pending = match pending.checked_add(items) {
            Some(pending) => pending,
            None => return Ok(Err("a container holds more values than fit a count".into())),
        };
    }
    if walk.offset != walk.end {
        return Ok(Err(format!(
            "{} bytes follow the payload",
            walk.end - walk.offset
        )));
    }
    let SkeletonWalk {
        mut skeleton,
        piece,
        ..
    } = walk;
    skeleton.pieces.push(piece);
    Ok(Ok(skeleton))
}

struct SkeletonWalk<R> {
    input: BufReader<R>,
    /// The file offset of the next byte.
    offset: u64,
    /// The file offset where the payload ends.
    end: u64,
    skeleton: Skeleton,
    /// The checksum of the bytes since the last byte string left out.
    piece: crc32fast::Hasher,
}

/// Why a value cannot be read: the file's bytes (`Err` inside) or the file itself.
type Step<T> = std::io::Result<Result<T, String>>;

impl<R: Read + Seek> SkeletonWalk<R> {
    /// Reads `n` bytes of the payload into `out`, checksummed.
    fn read_into(&mut self, n: u64, out: &mut Vec<u8>) -> Step<()> {
        if n > self.end - self.offset {
            return Ok(Err("the payload ends inside a value".into()));
        }
        let start = out.len();
        out.resize(start + n as usize, 0);
        self.input.read_exact(&mut out[start..])?;
        self.piece.update(&out[start..]);
        self.offset += n;
        Ok(Ok(()))
    }

    /// Copies `n` bytes of the payload into the skeleton.
    fn copy(&mut self, n: u64) -> Step<()> {
        let mut bytes = std::mem::take(&mut self.skeleton.bytes);
        let copied = self.read_into(n, &mut bytes);
        self.skeleton.bytes = bytes;
        copied
    }

    /// Copies an unsigned big-endian integer of `width` bytes into the skeleton.
    fn uint(&mut self, width: u64) -> Step<u64> {
        if let Err(detail) = self.copy(width)? {
            return Ok(Err(detail));
        }
        let bytes = &self.skeleton.bytes[self.skeleton.bytes.len() - width as usize..];
        Ok(Ok(bytes
            .iter()
            .fold(0, |acc, b| (acc << 8) | u64::from(*b))))
    }

    /// Reads one value's own bytes (for a container: its header) and returns how many values
    /// it holds.
    fn value(&mut self) -> Step<u64> {
        let start = self.skeleton.bytes.len();
        if let Err(detail) = self.copy(1)? {
            return Ok(Err(detail));
        }
        let marker = self.skeleton.bytes[start];
        let (width, then) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => return Ok(Ok(0)),
            0xc1 => return Ok(Err("the reserved MessagePack marker 0xc1".into())),
            0xcc | 0xd0 => return self.copy(1).map(|r| r.map(|()| 0)),
            0xcd | 0xd1 => return self.copy(2).map(|r| r.map(|()| 0)),
            0xce | 0xd2 | 0xca => return self.copy(4).map(|r| r.map(|()| 0)),
            0xcf | 0xd3 | 0xcb => return self.copy(8).map(|r| r.map(|()| 0)),
            0xd4..=0xd8 => return self.copy(1 + (1 << (marker - 0xd4))).map(|r| r.map(|()| 0)),
            0xa0..=0xbf => return self.copy(u64::from(marker & 0x1f)).map(|r| r.map(|()| 0)),
            0x90..=0x9f => return Ok(Ok(u64::from(marker & 0x0f))),
            0x80..=0x8f => return Ok(Ok(2 * u64::from(marker & 0x0f))),
            0xd9..=0xdb => (1 << (marker - 0xd9), Then::Bytes(0)),
            0xc7..=0xc9 => (1 << (marker - 0xc7), Then::Bytes(1)),
            0xc4..=0xc6 => (1 << (marker - 0xc4), Then::Binary),
            0xdc | 0xdd => (2 << (marker - 0xdc), Then::Items(1)),
            0xde | 0xdf => (2 << (marker - 0xde), Then::Items(2)),
        };
        let n = match self.uint(width)? {
            Ok(n) => n,
            Err(detail) => return Ok(Err(detail)),
        };
        match then {
            Then::Items(per) => Ok(Ok(n * per)),
            Then::Bytes(extra) => self.copy(n + extra).map(|r| r.map(|()| 0)),
            Then::Binary if n < LENT_MIN_BYTES => self.copy(n).map(|r| r.map(|()| 0)),
            Then::Binary => self.leave_out(start, n).map(|r| r.map(|()| 0)),
        }
    }

    /// Steps over the content of the `len`-byte string whose header starts at `start` in the
    /// skeleton, which keeps an empty byte string in its place.
    fn leave_out(&mut self, start: usize, len: u64) -> Step<()> {
        if len > self.end - self.offset {
            return Ok(Err("the payload ends inside a value".into()));
        }
        let header = self.skeleton.bytes.split_off(start);
        self.skeleton.bytes.extend_from_slice(&[0xc4, 0x00]);
        let piece = std::mem::replace(&mut self.piece, crc32fast::Hasher::new());
        self.skeleton.pieces.push(piece);
        self.skeleton.bins.push(SkeletonBin {
            at: self.skeleton.bytes.len(),
            offset: self.offset,
            len,
            header,
        });
        // At most the payload's length (checked above): it fits an `i64`, and the seek lands
        // inside the file as its length was when the header was checked.
        self.input.seek_relative(len as i64)?;
        self.offset += len;
        Ok(Ok(()))
    }
}

/// What follows a value's length.
enum Then {
    /// That many values per count (arrays 1, maps 2).
    Items(u64),
    /// That many bytes, plus the extension type's byte.
    Bytes(u64),
    /// A byte string's content.
    Binary,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn file_of(value: &Value) -> Vec<u8> {
        let mut payload = Vec::new();
        rmpv::encode::write_value(&mut payload, value).unwrap();
        let mut file = Header::for_payload(&payload).to_bytes().to_vec();
        file.extend_from_slice(&payload);
        file
    }

    fn skeleton_of(file: &[u8]) -> Result<Skeleton, String> {
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&file[..HEADER_LEN]);
        let header = Header::from_bytes(&header_bytes);
        let mut reader = std::io::Cursor::new(file);
        reader.set_position(HEADER_LEN as u64);
        read_skeleton(reader, &header).unwrap()
    }

    #[test]
    fn large_byte_strings_are_left_out_and_the_pieces_checksum_to_the_file() {
        let large = |fill: u8, len: usize| Value::Binary(vec![fill; len]);
        let value = Value::Map(vec![
            (Value::from("small"), large(1, 100)),
            (Value::from("a"), large(2, LENT_MIN_BYTES as usize)),
            (
                Value::from("nested"),
                Value::Array(vec![
                    Value::from("text"),
                    Value::from(-5),
                    Value::from(1.5),
                    Value::Ext(3, vec![9; 5]),
                    large(3, 300_000),
                    Value::Nil,
                ]),
            ),
        ]);
        let file = file_of(&value);
        let skeleton = skeleton_of(&file).unwrap();
        assert_eq!(skeleton.bins.len(), 2);
        assert_eq!(skeleton.pieces.len(), 3);
        let mut checksum = skeleton.pieces[0].clone();
        for (bin, piece) in skeleton.bins.iter().zip(&skeleton.pieces[1..]) {
            let (start, len) = (bin.offset as usize, bin.len as usize);
            // The content the file holds there, and the header before it, as the file wrote it.
            assert_eq!(&file[start - bin.header.len()..start], &bin.header[..]);
            assert_eq!(&skeleton.bytes[bin.at - 2..bin.at], &[0xc4, 0x00]);
            let mut content = crc32fast::Hasher::new();
            content.update(&file[start..start + len]);
            checksum.combine(&content);
            checksum.combine(piece);
        }
        let header = Header::from_bytes(&file[..HEADER_LEN].try_into().unwrap());
        assert_eq!(checksum.finalize(), header.checksum);
        // The skeleton is the file with the contents cut and each header made empty.
        let mut expected = Vec::new();
        let mut from = 0;
        for bin in &skeleton.bins {
            let start = bin.offset as usize;
            expected.extend_from_slice(&file[from..start - bin.header.len()]);
            expected.extend_from_slice(&[0xc4, 0x00]);
            from = start + bin.len as usize;
        }
        expected.extend_from_slice(&file[from..]);
        assert_eq!(skeleton.bytes, expected);
        assert!(skeleton.bytes.len() < 200, "{} bytes", skeleton.bytes.len());
    }

    #[test]
    fn bytes_that_do_not_end_with_the_payload_are_refused_without_allocating_their_lengths() {
        let file = file_of(&Value::Array(vec![Value::from(1), Value::from(2)]));
        // An array that claims 2^32 - 1 items, a byte string that claims 4 GiB, a string past
        // the end, the reserved marker, bytes after the value.
        for (payload, expected) in [
            (vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x01], "ends inside"),
            (vec![0xc6, 0xff, 0xff, 0xff, 0xff, 0x00], "ends inside"),
            (vec![0xa5, b'a'], "ends inside"),
            (vec![0xc1], "0xc1"),
            (vec![0x01, 0x02], "follow the payload"),
        ] {
            let mut crafted = Header::for_payload(&payload).to_bytes().to_vec();
            crafted.extend_from_slice(&payload);
            let error = skeleton_of(&crafted).err().expect("refused");
            assert!(error.contains(expected), "{payload:?}: {error}");
        }
        assert!(skeleton_of(&file).is_ok());
    }
}
