//! What a scan of a checkpoint payload finds: each tensor record's path, dtype, shape and
//! parameter id, grouped by the payload's top-level field, and the limits the scan enforces.
//! The walk itself is `scan.rs`.

use std::collections::BTreeMap;

/// Deepest nesting of arrays and maps accepted (burn records of real models nest a few dozen).
pub const MAX_DEPTH: usize = 128;
/// Most dimensions a tensor may have.
pub const MAX_RANK: usize = 16;
/// Most elements a tensor's shape may describe, counting only its non-zero dimensions (so that a
/// shape such as `[0, 2^60]`, which holds nothing, is refused too).
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// The kind of element a tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    /// Floating point.
    Float,
    /// Signed or unsigned integer.
    Int,
    /// Boolean.
    Bool,
}

/// A tensor's data type as the file spells it, with its element size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDtype {
    /// burn's name for it (`F32`, `I64`, `Bool(Native)`, ...).
    pub name: String,
    /// Bytes per element.
    pub size: usize,
    /// Float, int or bool.
    pub kind: ElementKind,
}

impl TensorDtype {
    pub(super) fn plain(name: &str) -> Option<Self> {
        let (size, kind) = match name {
            "F64" => (8, ElementKind::Float),
            "F32" | "Flex32" => (4, ElementKind::Float),
            "F16" | "BF16" => (2, ElementKind::Float),
            "I64" | "U64" => (8, ElementKind::Int),
            "I32" | "U32" => (4, ElementKind::Int),
            "I16" | "U16" => (2, ElementKind::Int),
            "I8" | "U8" => (1, ElementKind::Int),
            _ => return None,
        };
        Some(Self {
            name: name.to_string(),
            size,
            kind,
        })
    }

    /// Checks what `data`, this dtype's bytes, must hold beyond their length: a native boolean
    /// is 0 or 1 (burn reads the byte as a Rust `bool`). The error says which element is wrong.
    pub(super) fn check_elements(&self, data: &[u8]) -> Result<(), String> {
        if self.name != "Bool(Native)" {
            return Ok(());
        }
        match data.iter().position(|b| *b > 1) {
            Some(bad) => Err(format!(
                "boolean element {bad} is stored as {}, not 0 or 1",
                data[bad]
            )),
            None => Ok(()),
        }
    }

    pub(super) fn boolean(store: &str) -> Option<Self> {
        let size = match store {
            "Native" | "U8" => 1,
            "U32" => 4,
            _ => return None,
        };
        Some(Self {
            name: format!("Bool({store})"),
            size,
            kind: ElementKind::Bool,
        })
    }
}

/// One tensor record found in a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedTensor {
    /// Where it sits: field names and array indices joined by `.` (`module.hidden.weight`).
    pub path: String,
    /// The id of the parameter record around it (`{id, param}`), if there is one.
    pub param_id: Option<String>,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its data type.
    pub dtype: TensorDtype,
    /// The rank an enclosing `RankN` variant declares (burn's optimizer state), if any.
    pub declared_rank: Option<usize>,
}

impl ScannedTensor {
    /// Bytes of tensor data it holds.
    pub fn bytes(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product::<u64>() * self.dtype.size as u64
    }
}

/// Every tensor of a payload, grouped by the payload's top-level field (`module`, `optimizer`,
/// `kept_module`, ...), in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayloadScan {
    /// Tensors per top-level field.
    pub fields: BTreeMap<String, Vec<ScannedTensor>>,
    /// Where each top-level field's value lies in the payload (byte offsets).
    pub spans: BTreeMap<String, std::ops::Range<usize>>,
    /// The tensors whose bytes were read apart from the payload (a scan of a skeleton), in file
    /// order; empty for a scan of a whole payload.
    pub lent: Vec<LentTensor>,
}

/// A tensor record whose bytes a skeleton leaves out (they were read into a buffer of their
/// own): where its empty byte string lies, and what the scan found of it.
#[derive(Debug, Clone, PartialEq)]
pub struct LentTensor {
    /// The payload offset of the empty byte string's content (just after its 2-byte header).
    pub at: usize,
    /// Its data type: what its buffer must hold.
    pub dtype: TensorDtype,
    /// Where it sits, as [`ScannedTensor::path`].
    pub path: String,
}

impl PayloadScan {
    /// The tensors under a top-level field (none when it holds none).
    pub fn field(&self, name: &str) -> &[ScannedTensor] {
        self.fields.get(name).map_or(&[], Vec::as_slice)
    }

    /// The bytes of the top-level field `name` in `payload` (the bytes this scan was made of)
    /// with the tensors found in them: what a record decoded from that field was read from.
    pub fn source<'a>(&'a self, payload: &'a [u8], name: &str) -> Option<RecordSource<'a>> {
        static NONE_LENT: LentBins = LentBins(BTreeMap::new());
        self.source_lent(payload, &NONE_LENT, name)
    }

    /// [`source`](Self::source) for a skeleton `payload` whose large byte strings were read
    /// into the buffers `lent` describes.
    pub fn source_lent<'a>(
        &'a self,
        payload: &'a [u8],
        lent: &'a LentBins,
        name: &str,
    ) -> Option<RecordSource<'a>> {
        let span = self.spans.get(name)?.clone();
        Some(RecordSource {
            encoded: payload.get(span)?,
            tensors: self.field(name),
            lent,
        })
    }
}

/// The byte strings a skeleton leaves out, by the address of the empty byte string that stands
/// for each in the skeleton's memory: the header the file gave it and the buffer that holds its
/// content (an address and a length; only compared, never read through).
#[derive(Debug, Default)]
pub struct LentBins(pub(super) BTreeMap<usize, LentBin>);

/// One entry of [`LentBins`].
#[derive(Debug)]
pub(super) struct LentBin {
    /// The byte string's header as the file wrote it (marker and length).
    pub header: Vec<u8>,
    /// The address of the buffer that holds its content.
    pub address: usize,
    /// The content's length.
    pub len: usize,
}

/// The MessagePack bytes a record was decoded from, and the tensors a scan found in them.
#[derive(Debug, Clone, Copy)]
pub struct RecordSource<'a> {
    /// The record's encoded bytes.
    pub encoded: &'a [u8],
    /// The tensors in them, in order.
    pub tensors: &'a [ScannedTensor],
    /// The byte strings `encoded` leaves out (none when it is the file's bytes).
    pub lent: &'a LentBins,
}
