//! A walk over the raw MessagePack of a checkpoint payload that checks every tensor record
//! before any typed decoding: burn, bytemuck and ndarray trust a tensor's dtype, shape and byte
//! length, and panic (or worse, in release builds) when they disagree.
//!
//! The walk allocates nothing from a length read in the file (only the path of the current
//! value and one small entry per tensor), limits nesting, and never panics.
//! What it finds is `scanned.rs`'s; its reading of a tensor record is `scan_tensor.rs`.

use std::collections::BTreeMap;

use super::scanned::{PayloadScan, MAX_DEPTH};

/// Walks the MessagePack `bytes` and checks every tensor record (a map with exactly the keys
/// `bytes`, `shape` and `dtype`): a known dtype, a shape of at most [`MAX_RANK`](super::MAX_RANK) dimensions and
/// [`MAX_ELEMENTS`](super::MAX_ELEMENTS) elements (checked arithmetic), a byte length equal to elements × dtype size,
/// booleans stored as 0 or 1; and every parameter id (`{id, param}`) of a form burn reads. The
/// error names the tensor's path and what is wrong.
pub fn scan_payload(bytes: &[u8]) -> Result<PayloadScan, String> {
    scan_skeleton(bytes, &BTreeMap::new())
}

/// [`scan_payload`] of a skeleton: a payload whose large byte strings are left out, each an
/// empty byte string whose content offset is a key of `lent`, with the length it stands for.
/// Such a string in a tensor record counts with that length and is listed in
/// [`PayloadScan::lent`]; what the scan cannot see (booleans stored as 0 or 1) is left to the
/// reader of the buffer.
pub(super) fn scan_skeleton(
    bytes: &[u8],
    lent: &BTreeMap<usize, u64>,
) -> Result<PayloadScan, String> {
    let mut walker = Walker {
        input: bytes,
        pos: 0,
        path: Vec::new(),
        scan: PayloadScan::default(),
        rank: None,
        lent,
    };
    walker.value(0)?;
    if walker.pos != bytes.len() {
        return Err(format!(
            "{} bytes follow the payload",
            bytes.len() - walker.pos
        ));
    }
    Ok(walker.scan)
}

/// Whether burn can read `id` as a parameter id without panicking (`ParamId::deserialize`
/// copies its decoded bytes into 8 and panics on anything it cannot parse).
pub fn valid_param_id(id: &str) -> bool {
    // Up to 13 base-32 characters decode to at most 8 bytes; the older UUID form has dashes,
    // which base 32 does not, so it never reaches the 8-byte copy.
    let short = id.len() <= 13;
    let uuid = id.len() == 36 && id.contains('-');
    (short || uuid) && burn::module::ParamId::try_deserialize(id).is_some()
}

#[path = "scan_tensor.rs"]
mod tensor;

struct Walker<'a> {
    input: &'a [u8],
    pos: usize,
    path: Vec<String>,
    scan: PayloadScan,
    rank: Option<usize>,
    lent: &'a BTreeMap<usize, u64>,
}

/// A map key or small value read whole.
enum Scalar<'a> {
    Str(&'a str),
    Uint(u64),
    Other,
}

impl<'a> Walker<'a> {
    fn here(&self) -> String {
        if self.path.is_empty() {
            "the payload".to_string()
        } else {
            format!("`{}`", self.path.join("."))
        }
    }

    fn fail<T>(&self, what: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("at {}: {what}", self.here()))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.input.len() - self.pos);
        match n {
            Some(n) => {
                let bytes = &self.input[self.pos..self.pos + n];
                self.pos += n;
                Ok(bytes)
            }
            None => self.fail("the payload ends inside a value"),
        }
    }

    fn uint(&mut self, width: usize) -> Result<u64, String> {
        let bytes = self.take(width as u64)?;
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// Reads one value whole when it is a string or an unsigned integer; skips anything else.
    fn scalar(&mut self, depth: usize) -> Result<Scalar<'a>, String> {
        let start = self.pos;
        let marker = self.byte()?;
        let len = match marker {
            0x00..=0x7f => return Ok(Scalar::Uint(u64::from(marker))),
            0xcc => return Ok(Scalar::Uint(self.uint(1)?)),
            0xcd => return Ok(Scalar::Uint(self.uint(2)?)),
            0xce => return Ok(Scalar::Uint(self.uint(4)?)),
            0xcf => return Ok(Scalar::Uint(self.uint(8)?)),
            0xa0..=0xbf => u64::from(marker & 0x1f),
            0xd9 => self.uint(1)?,
            0xda => self.uint(2)?,
            0xdb => self.uint(4)?,
            _ => {
                self.pos = start;
                self.skip(depth)?;
                return Ok(Scalar::Other);
            }
        };
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Scalar::Str(text)),
            Err(_) => self.fail("a string that is not UTF-8"),
        }
    }

    /// Walks one value of any kind.
    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return self.fail(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        let marker = self.byte()?;
        match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(()),
            0xc1 => self.fail("the reserved MessagePack marker 0xc1"),
            0xcc | 0xd0 => self.take(1).map(drop),
            0xcd | 0xd1 => self.take(2).map(drop),
            0xce | 0xd2 | 0xca => self.take(4).map(drop),
            0xcf | 0xd3 | 0xcb => self.take(8).map(drop),
            0xa0..=0xbf => self.take(u64::from(marker & 0x1f)).map(drop),
            0xd9 | 0xc4 => {
                let n = self.uint(1)?;
                self.take(n).map(drop)
            }
            0xda | 0xc5 => {
                let n = self.uint(2)?;
                self.take(n).map(drop)
            }
            0xdb | 0xc6 => {
                let n = self.uint(4)?;
                self.take(n).map(drop)
            }
            0xd4 => self.take(2).map(drop),
            0xd5 => self.take(3).map(drop),
            0xd6 => self.take(5).map(drop),
            0xd7 => self.take(9).map(drop),
            0xd8 => self.take(17).map(drop),
            0xc7 => {
                let n = self.uint(1)?;
                self.take(n + 1).map(drop)
            }
            0xc8 => {
                let n = self.uint(2)?;
                self.take(n + 1).map(drop)
            }
            0xc9 => {
                let n = self.uint(4)?;
                self.take(n + 1).map(drop)
            }
            0x90..=0x9f => self.array(u64::from(marker & 0x0f), depth),
            0xdc => {
                let n = self.uint(2)?;
                self.array(n, depth)
            }
            0xdd => {
                let n = self.uint(4)?;
                self.array(n, depth)
            }
            0x80..=0x8f => self.map(u64::from(marker & 0x0f), depth),
            0xde => {
                let n = self.uint(2)?;
                self.map(n, depth)
            }
            0xdf => {
                let n = self.uint(4)?;
                self.map(n, depth)
            }
        }
    }

    /// Steps over one value without looking into it (a map key of an unusual kind).
    fn skip(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return self.fail(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        let start = self.pos;
        let items = match self.byte()? {
            marker @ 0x90..=0x9f => u64::from(marker & 0x0f),
            0xdc => self.uint(2)?,
            0xdd => self.uint(4)?,
            marker @ 0x80..=0x8f => 2 * u64::from(marker & 0x0f),
            0xde => 2 * self.uint(2)?,
            0xdf => 2 * self.uint(4)?,
            _ => {
                self.pos = start;
                return self.value(depth);
            }
        };
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    fn array(&mut self, len: u64, depth: usize) -> Result<(), String> {
        for index in 0..len {
            self.path.push(index.to_string());
            let walked = self.value(depth + 1);
            self.path.pop();
            walked?;
        }
        Ok(())
    }

    fn map(&mut self, len: u64, depth: usize) -> Result<(), String> {
        // burn's tensor and parameter records are recognised by their first key, whatever the
        // order of the others: serde reads struct fields in any order.
        if len == 3 || len == 2 {
            let start = self.pos;
            let first = self.scalar(depth + 1)?;
            self.pos = start;
            match first {
                Scalar::Str("bytes" | "shape" | "dtype") if len == 3 => return self.tensor(depth),
                Scalar::Str("id" | "param") if len == 2 => return self.param(depth),
                _ => {}
            }
        }
        for _ in 0..len {
            let segment = match self.scalar(depth + 1)? {
                Scalar::Str(key) => key.to_string(),
                Scalar::Uint(key) => key.to_string(),
                Scalar::Other => "?".to_string(),
            };
            let rank = if len == 1 {
                segment
                    .strip_prefix("Rank")
                    .and_then(|r| r.parse::<usize>().ok())
            } else {
                None
            };
            let outer_rank = self.rank;
            if rank.is_some() {
                self.rank = rank;
            }
            let top = self.path.is_empty().then(|| segment.clone());
            if let Some(top) = &top {
                self.scan.fields.entry(top.clone()).or_default();
            }
            self.path.push(segment);
            let start = self.pos;
            let walked = self.value(depth + 1);
            if let Some(top) = top {
                self.scan.spans.insert(top, start..self.pos);
            }
            self.path.pop();
            self.rank = outer_rank;
            walked?;
        }
        Ok(())
    }

    /// A parameter record: `{id, param}` in either order; the id is given to the tensors found
    /// in `param`.
    fn param(&mut self, depth: usize) -> Result<(), String> {
        let field = self.path.first().cloned().unwrap_or_default();
        let before = self.scan.fields.get(&field).map_or(0, Vec::len);
        let (mut id, mut param) = (None, false);
        for _ in 0..2 {
            match self.scalar(depth + 1)? {
                Scalar::Str("id") if id.is_none() => match self.scalar(depth + 1)? {
                    Scalar::Str(text) if valid_param_id(text) => id = Some(text.to_string()),
                    Scalar::Str(text) => {
                        return self.fail(format!("parameter id {text:?} is not one burn can read"))
                    }
                    _ => return self.fail("a parameter id that is not a string"),
                },
                Scalar::Str("param") if !param => {
                    param = true;
                    self.value(depth + 1)?;
                }
                _ => {
                    return self
                        .fail("a parameter record needs exactly the fields `id` and `param`")
                }
            }
        }
        if let Some(tensors) = self.scan.fields.get_mut(&field) {
            for tensor in tensors[before..]
                .iter_mut()
                .filter(|t| t.param_id.is_none())
            {
                tensor.param_id = id.clone();
            }
        }
        Ok(())
    }
}
