//! Whether a decoded record encodes to the very bytes it was decoded from, checked as the
//! encoder writes (no copy of the record's tensors). When it does, the file's own scan of those
//! bytes describes the record, and the record need not be encoded again into a buffer to be
//! scanned.
//!
//! A record keyed by parameter id (an optimizer's state: a hash map) writes its entries in an
//! order that changes from one process to the next, so for such records the entries of the
//! top-level map may come in any order: each must match one entry of the file, and every entry
//! of the file must be matched once.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use super::scanned::{LentBins, MAX_DEPTH};

/// The longest map key matched (a parameter id is 13 bytes; a longer key makes the match fail,
/// which only costs the slower check).
const MAX_KEY_BYTES: usize = 4096;

/// Whether `record` encodes (named MessagePack, as checkpoints are written) to exactly `expected`;
/// stops at the first byte that differs. A byte string that `lent` says was left out of
/// `expected` matches when the record writes the header the file gave it and then the very
/// buffer it was read into (the same memory: decoding handed that buffer to the record).
pub(super) fn encodes_to<T: Serialize>(record: &T, expected: &[u8], lent: &LentBins) -> bool {
    matches(record, Matcher::exact(expected, lent))
}

/// [`encodes_to`], but the entries of a top-level map may come in any order. `expected` must
/// then hold a map whose keys are all different; otherwise the bytes must match exactly.
pub(super) fn encodes_to_any_entry_order<T: Serialize>(
    record: &T,
    expected: &[u8],
    lent: &LentBins,
) -> bool {
    matches(record, Matcher::any_entry_order(expected, lent))
}

fn matches<T: Serialize>(record: &T, mut matcher: Matcher<'_>) -> bool {
    rmp_serde::encode::write_named(&mut matcher, record).is_ok() && matcher.finished()
}

/// A writer that compares what it is given with the expected bytes.
struct Matcher<'a> {
    /// Bytes still to match in order: the whole input, or the map's header.
    ordered: Expected<'a>,
    /// The value of the map entry being matched, what is left of it.
    value: Expected<'a>,
    /// The entries not matched yet, value by key.
    entries: Entries<'a>,
    /// The bytes of a key being written, until it is whole.
    key: Vec<u8>,
    lent: &'a LentBins,
}

impl<'a> Matcher<'a> {
    fn exact(expected: &'a [u8], lent: &'a LentBins) -> Self {
        Self {
            ordered: Expected::new(expected),
            value: Expected::new(&[]),
            entries: HashMap::new(),
            key: Vec::new(),
            lent,
        }
    }

    fn any_entry_order(expected: &'a [u8], lent: &'a LentBins) -> Self {
        map_entries(expected).map_or_else(
            || Self::exact(expected, lent),
            |(header, entries)| Self {
                ordered: Expected::new(header),
                value: Expected::new(&[]),
                entries,
                key: Vec::new(),
                lent,
            },
        )
    }

    fn finished(&self) -> bool {
        self.ordered.is_empty()
            && self.value.is_empty()
            && self.entries.is_empty()
            && self.key.is_empty()
    }
}

/// Expected bytes still to match: a slice of the skeleton (or file), where a left-out byte
/// string stands as an empty one (`c4 00`) and is matched as its header, then its buffer.
struct Expected<'a> {
    rest: &'a [u8],
    /// The left-out byte string's header being matched.
    header: &'a [u8],
    /// The buffer being matched: its next address and the bytes left.
    content: (usize, usize),
}

impl<'a> Expected<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self {
            rest,
            header: &[],
            content: (0, 0),
        }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty() && self.header.is_empty() && self.content.1 == 0
    }

    /// Takes what `buf` and the expected bytes have in common off both; false when they
    /// differ.
    fn advance(&mut self, buf: &mut &[u8], lent: &'a LentBins) -> bool {
        while !buf.is_empty() && !self.is_empty() {
            if !self.header.is_empty() {
                if !advance(buf, &mut self.header) {
                    return false;
                }
            } else if self.content.1 > 0 {
                // The record's bytes must be the buffer itself, which is not read again.
                let (address, left) = self.content;
                if buf.as_ptr() as usize != address {
                    return false;
                }
                let n = left.min(buf.len());
                *buf = &buf[n..];
                self.content = (address + n, left - n);
            } else {
                let start = self.rest.as_ptr() as usize;
                // A left-out string's key is the address just after its 2-byte stand-in.
                let end = start + self.rest.len();
                let next = lent
                    .0
                    .range(start + 2..)
                    .next()
                    .filter(|(key, _)| **key <= end);
                match next {
                    Some((key, bin)) if key - 2 == start => {
                        self.rest = &self.rest[2..];
                        self.header = &bin.header;
                        self.content = (bin.address, bin.len);
                    }
                    Some((key, _)) => {
                        let mut before = &self.rest[..key - 2 - start];
                        let matched = advance(buf, &mut before);
                        let consumed = key - 2 - start - before.len();
                        self.rest = &self.rest[consumed..];
                        if !matched {
                            return false;
                        }
                    }
                    None => {
                        if !advance(buf, &mut self.rest) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

/// A map's entries: the bytes of each value, by the bytes of its key.
type Entries<'a> = HashMap<&'a [u8], &'a [u8]>;

/// Takes the common prefix of `buf` and `expected` off both; false when they differ.
fn advance(buf: &mut &[u8], expected: &mut &[u8]) -> bool {
    let n = buf.len().min(expected.len());
    if buf[..n] != expected[..n] {
        return false;
    }
    *buf = &buf[n..];
    *expected = &expected[n..];
    true
}

impl Write for Matcher<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let written = buf.len();
        let differs = || std::io::Error::other("differs");
        while !buf.is_empty() {
            let matched = if !self.ordered.is_empty() {
                self.ordered.advance(&mut buf, self.lent)
            } else if !self.value.is_empty() {
                self.value.advance(&mut buf, self.lent)
            } else {
                // A key, byte by byte until it is one whole value; then its entry's value.
                self.key.push(buf[0]);
                buf = &buf[1..];
                match value_end(&self.key, 0) {
                    Some(_) => match self.entries.remove(self.key.as_slice()) {
                        Some(value) => {
                            self.value = Expected::new(value);
                            self.key.clear();
                            true
                        }
                        None => false,
                    },
                    None => self.key.len() < MAX_KEY_BYTES,
                }
            };
            if !matched {
                return Err(differs());
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The header of the map that `bytes` holds whole, and its entries (value by key); `None` when
/// `bytes` is not exactly one map or two of its keys are the same.
fn map_entries(bytes: &[u8]) -> Option<(&[u8], Entries<'_>)> {
    let (header, len) = match *bytes.first()? {
        marker @ 0x80..=0x8f => (1, usize::from(marker & 0x0f)),
        0xde => (
            3,
            usize::from(u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?)),
        ),
        0xdf => (
            5,
            usize::try_from(u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?)).ok()?,
        ),
        _ => return None,
    };
    let mut entries = HashMap::new();
    let mut pos = header;
    for _ in 0..len {
        let key_end = pos + value_end(&bytes[pos..], 1)?;
        let value_end = key_end + value_end(&bytes[key_end..], 1)?;
        if entries
            .insert(&bytes[pos..key_end], &bytes[key_end..value_end])
            .is_some()
        {
            return None;
        }
        pos = value_end;
    }
    (pos == bytes.len()).then_some((&bytes[..header], entries))
}

/// The length of the MessagePack value at the start of `bytes`; `None` when `bytes` ends inside
/// it, it is not MessagePack, or it nests deeper than [`MAX_DEPTH`].
fn value_end(bytes: &[u8], depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let uint = |width: usize| -> Option<usize> {
        let raw = bytes.get(1..1 + width)?;
        usize::try_from(raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))).ok()
    };
    // (bytes before the payload or items, payload bytes, nested values)
    let (head, payload, items): (usize, usize, usize) = match *bytes.first()? {
        0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (1, 0, 0),
        marker @ 0x80..=0x8f => (1, 0, 2 * usize::from(marker & 0x0f)),
        marker @ 0x90..=0x9f => (1, 0, usize::from(marker & 0x0f)),
        marker @ 0xa0..=0xbf => (1, usize::from(marker & 0x1f), 0),
        0xc4 | 0xd9 => (2, uint(1)?, 0),
        0xc5 | 0xda => (3, uint(2)?, 0),
        0xc6 | 0xdb => (5, uint(4)?, 0),
        0xc7 => (3, uint(1)?, 0),
        0xc8 => (4, uint(2)?, 0),
        0xc9 => (6, uint(4)?, 0),
        0xca => (5, 0, 0),
        0xcb => (9, 0, 0),
        0xcc | 0xd0 => (2, 0, 0),
        0xcd | 0xd1 => (3, 0, 0),
        0xce | 0xd2 => (5, 0, 0),
        0xcf | 0xd3 => (9, 0, 0),
        0xd4 => (3, 0, 0),
        0xd5 => (4, 0, 0),
        0xd6 => (6, 0, 0),
        0xd7 => (10, 0, 0),
        0xd8 => (18, 0, 0),
        0xdc => (3, 0, uint(2)?),
        0xdd => (5, 0, uint(4)?),
        0xde => (3, 0, 2 * uint(2)?),
        0xdf => (5, 0, uint(4)?.checked_mul(2)?),
        0xc1 => return None,
    };
    let mut end = head.checked_add(payload)?;
    for _ in 0..items {
        // Every value is at least one byte: a count larger than the input ends here.
        end = end.checked_add(value_end(bytes.get(end..)?, depth + 1)?)?;
    }
    (end <= bytes.len()).then_some(end)
}

#[cfg(test)]
#[path = "encoded_match_tests.rs"]
mod tests;
