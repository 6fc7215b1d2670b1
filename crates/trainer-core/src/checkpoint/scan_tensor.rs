//! The scan's reading of a tensor record (`{bytes, shape, dtype}`): its byte length against its
//! shape and dtype, booleans stored as 0 or 1, and where a skeleton left its bytes out.

use super::{Scalar, Walker};
use crate::checkpoint::scanned::{
    LentTensor, ScannedTensor, TensorDtype, MAX_DEPTH, MAX_ELEMENTS, MAX_RANK,
};

/// A tensor record's bytes: in the input, or lent (left out of a skeleton) with their length.
enum Content<'a> {
    Here(&'a [u8]),
    Lent { at: usize, len: u64 },
}

impl<'a> Walker<'a> {
    /// A tensor record: `{bytes, shape, dtype}` in any order.
    pub(super) fn tensor(&mut self, depth: usize) -> Result<(), String> {
        let (mut data, mut shape, mut dtype) = (None, None, None);
        for _ in 0..3 {
            match self.scalar(depth + 1)? {
                Scalar::Str("bytes") if data.is_none() => data = Some(self.binary()?),
                Scalar::Str("shape") if shape.is_none() => shape = Some(self.shape()?),
                Scalar::Str("dtype") if dtype.is_none() => dtype = Some(self.dtype(depth + 1)?),
                _ => {
                    return self.fail(
                        "a tensor record needs exactly the fields `bytes`, `shape` and `dtype`",
                    )
                }
            }
        }
        let (Some(data), Some(shape), Some(dtype)) = (data, shape, dtype) else {
            return self
                .fail("a tensor record needs exactly the fields `bytes`, `shape` and `dtype`");
        };
        let mut elements: u64 = 1;
        let mut nonzero: u64 = 1;
        for &dim in &shape {
            elements = elements.saturating_mul(dim as u64);
            if dim > 0 {
                nonzero = match nonzero.checked_mul(dim as u64) {
                    Some(n) if n <= MAX_ELEMENTS => n,
                    _ => {
                        return self.fail(format!(
                            "shape {shape:?} describes more than {MAX_ELEMENTS} elements"
                        ))
                    }
                };
            }
        }
        let expected = elements * dtype.size as u64;
        let held = match data {
            Content::Here(data) => data.len() as u64,
            Content::Lent { len, .. } => len,
        };
        if held != expected {
            return self.fail(format!(
                "shape {shape:?} of {} needs {expected} bytes, the record holds {held}",
                dtype.name,
            ));
        }
        let data = match data {
            Content::Here(data) => data,
            Content::Lent { at, .. } => {
                let (path, dtype) = (self.path.join("."), dtype.clone());
                self.scan.lent.push(LentTensor { at, dtype, path });
                &[]
            }
        };
        if let Err(what) = dtype.check_elements(data) {
            return self.fail(what);
        }
        let field = self.path.first().cloned().unwrap_or_default();
        let tensor = ScannedTensor {
            path: self.path.join("."),
            param_id: None,
            shape,
            dtype,
            declared_rank: self.rank,
        };
        self.scan.fields.entry(field).or_default().push(tensor);
        Ok(())
    }

    fn binary(&mut self) -> Result<Content<'a>, String> {
        let len = match self.byte()? {
            0xc4 => self.uint(1)?,
            0xc5 => self.uint(2)?,
            0xc6 => self.uint(4)?,
            // Sequences of small integers also decode as bytes.
            _ => return self.fail("tensor bytes that are not a binary value"),
        };
        let at = self.pos;
        match self.lent.get(&at) {
            Some(&lent) if len == 0 => Ok(Content::Lent { at, len: lent }),
            _ => self.take(len).map(Content::Here),
        }
    }

    fn shape(&mut self) -> Result<Vec<usize>, String> {
        let len = match self.byte()? {
            marker @ 0x90..=0x9f => u64::from(marker & 0x0f),
            0xdc => self.uint(2)?,
            0xdd => self.uint(4)?,
            _ => return self.fail("a tensor shape that is not an array"),
        };
        if len > MAX_RANK as u64 {
            return self.fail(format!(
                "a tensor shape of {len} dimensions (at most {MAX_RANK})"
            ));
        }
        let mut dims = Vec::new();
        for _ in 0..len {
            match self.scalar(MAX_DEPTH)? {
                Scalar::Uint(dim) => match usize::try_from(dim) {
                    Ok(dim) => dims.push(dim),
                    Err(_) => {
                        return self
                            .fail(format!("tensor dimension {dim} does not fit this machine"))
                    }
                },
                _ => return self.fail("a tensor dimension that is not an unsigned integer"),
            }
        }
        Ok(dims)
    }

    fn dtype(&mut self, depth: usize) -> Result<TensorDtype, String> {
        let start = self.pos;
        match self.scalar(depth)? {
            Scalar::Str(name) => {
                return TensorDtype::plain(name)
                    .map_or_else(|| self.fail(format!("unknown tensor dtype {name:?}")), Ok)
            }
            Scalar::Uint(_) => return self.fail("a tensor dtype given as a number"),
            Scalar::Other => {}
        }
        self.pos = start;
        if self.byte()? != 0x81 {
            self.pos = start;
            return self.fail("a tensor dtype of an unknown form");
        }
        let variant = match self.scalar(depth + 1)? {
            Scalar::Str(variant) => variant,
            _ => return self.fail("a tensor dtype of an unknown form"),
        };
        match (variant, self.scalar(depth + 1)?) {
            ("Bool", Scalar::Str(store)) => TensorDtype::boolean(store)
                .map_or_else(|| self.fail(format!("unknown bool storage {store:?}")), Ok),
            ("QFloat", _) => {
                self.fail("a quantized tensor: checkpoints hold full-precision tensors only")
            }
            (other, _) => self.fail(format!("unknown tensor dtype {other:?}")),
        }
    }
}
