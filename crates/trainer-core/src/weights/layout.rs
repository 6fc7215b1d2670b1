//! How a file lays weights out: burn's (a `Linear` weight `[in, out]`) or PyTorch's (`[out,
//! in]`). Names are the same in both: the record paths (`layers.0.weight`), which are
//! PyTorch's state-dict keys for the same structure.

/// The layout of a weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// burn's: every tensor as the module holds it.
    Burn,
    /// PyTorch's: `Linear` weights transposed to `[out, in]`.
    Torch,
    /// Reading only: the file's `layout` metadata when it has one (files this crate writes),
    /// else each `Linear` weight's shape tells, and a square one is taken as PyTorch's.
    #[default]
    Auto,
}

impl Layout {
    /// The name in a file's metadata.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Burn => "burn",
            Layout::Torch => "torch",
            Layout::Auto => "auto",
        }
    }
}

/// Whether a parameter is a `Linear` layer's weight, the one tensor whose layout differs.
pub(crate) fn is_linear_weight(container: &str, path: &str, rank: usize) -> bool {
    container == "Struct:Linear" && path.rsplit('.').next() == Some("weight") && rank == 2
}

/// The bytes of a row-major `[rows, columns]` matrix of `element`-byte values, transposed.
pub(crate) fn transpose(bytes: &[u8], rows: usize, columns: usize, element: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    for r in 0..rows {
        for c in 0..columns {
            let from = (r * columns + c) * element;
            let to = (c * rows + r) * element;
            out[to..to + element].copy_from_slice(&bytes[from..from + element]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn a_transpose_moves_whole_elements() {
        // [[1, 2, 3], [4, 5, 6]] of u16 → [[1, 4], [2, 5], [3, 6]].
        let bytes: Vec<u8> = [1u16, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = transpose(&bytes, 2, 3, 2);
        let values: Vec<u16> = out
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, [1, 4, 2, 5, 3, 6]);
    }
}
