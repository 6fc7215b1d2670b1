//! A model initialised from a safetensors or PyTorch file: every parameter found by its record
//! path, checked (dtype, shape in the file's layout, byte length) before burn builds a tensor.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{backend::Backend, Bool, DType, Int, Tensor, TensorData};

use super::layout::{is_linear_weight, transpose, Layout};
use crate::checkpoint::{parameter_specs, ElementKind, ParamSpec};
use crate::error::{panic_message, Result, TrainerError};
use crate::fs::read_regular_file;

/// The largest weights file read.
pub const MAX_WEIGHTS_BYTES: u64 = 1 << 40;

/// What an import loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Parameters loaded (all of the model's).
    pub loaded: usize,
    /// The layout the file was read in.
    pub layout: Layout,
    /// `Linear` weights transposed from PyTorch's layout.
    pub transposed: Vec<String>,
    /// Tensors of the file the model has no parameter for (left out).
    pub unused: Vec<String>,
}

/// One tensor of a file, on the host.
struct FileTensor {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Loads every parameter of `module` from the safetensors or PyTorch (`.pt`, `.pth`: a zip
/// archive or a legacy pickle) file at `path`, named by its record path (`layers.0.weight`:
/// PyTorch's state-dict key for the same structure). `layout` says whether `Linear` weights are
/// PyTorch's `[out, in]` (transposed on the way in) or burn's `[in, out]`; `Auto` reads the
/// file's `layout` metadata, else each weight's shape (a square one is taken as PyTorch's).
///
/// The file is untrusted: a missing tensor, a shape or dtype that does not fit, a byte length
/// that disagrees with the shape are errors naming the tensor, before any tensor is built; the
/// parameters keep their ids. PyTorch files are read by burn-store's restricted unpickler inside
/// a panic guard.
pub fn load_weights<B: Backend, M: Module<B>>(
    module: M,
    path: &Path,
    layout: Layout,
    device: &B::Device,
) -> Result<(M, ImportReport)> {
    let origin = path.display().to_string();
    let bad = |detail: String| TrainerError::CheckpointMismatch {
        path: origin.clone(),
        detail,
    };
    let bytes = read_regular_file(path, MAX_WEIGHTS_BYTES, "reading weights")?;
    let (mut tensors, file_layout) = if is_pytorch(&bytes) {
        (read_pytorch(bytes).map_err(bad)?, None)
    } else {
        read_safetensors(&bytes).map_err(bad)?
    };
    let specs = parameter_specs::<B, M>(&module);
    let layout = match (layout, file_layout) {
        (Layout::Auto, Some(named)) => named,
        (layout, _) => layout,
    };
    let mut report = ImportReport {
        loaded: 0,
        layout,
        transposed: Vec::new(),
        unused: Vec::new(),
    };
    let mut prepared: BTreeMap<String, TensorData> = BTreeMap::new();
    for spec in &specs {
        let tensor = tensors.remove(&spec.path).ok_or_else(|| {
            bad(format!(
                "it has no tensor `{}` (the model's parameter)",
                spec.path
            ))
        })?;
        let data = prepare(spec, tensor, layout, &mut report).map_err(bad)?;
        prepared.insert(spec.path.clone(), data);
    }
    report.loaded = prepared.len();
    report.unused = tensors.into_keys().collect();
    let mut mapper = Loader {
        path: Vec::new(),
        tensors: prepared,
        device: device.clone(),
    };
    let module = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.map(&mut mapper)))
        .map_err(|payload| {
            bad(format!(
                "burn refused its tensors: {}",
                panic_message(payload.as_ref())
            ))
        })?;
    Ok((module, report))
}

/// Zip archives (PyTorch 1.6+) start with `PK\x03\x04`; legacy pickles with the protocol 2 opcode.
fn is_pytorch(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80, 0x02])
}

fn read_safetensors(
    bytes: &[u8],
) -> std::result::Result<(BTreeMap<String, FileTensor>, Option<Layout>), String> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a readable safetensors file: {e}"))?;
    let layout = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("layout"))
        .and_then(|l| match l.as_str() {
            "torch" => Some(Layout::Torch),
            "burn" => Some(Layout::Burn),
            _ => None,
        });
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a readable safetensors file: {e}"))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F64 => DType::F64,
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::I64 => DType::I64,
            safetensors::Dtype::I32 => DType::I32,
            safetensors::Dtype::I16 => DType::I16,
            safetensors::Dtype::I8 => DType::I8,
            safetensors::Dtype::U8 => DType::U8,
            safetensors::Dtype::BOOL => DType::Bool(burn::tensor::BoolStore::Native),
            other => {
                return Err(format!(
                    "tensor `{name}` has dtype {other:?}, which the trainer does not read"
                ))
            }
        };
        tensors.insert(
            name,
            FileTensor {
                dtype,
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            },
        );
    }
    Ok((tensors, layout))
}

fn read_pytorch(bytes: Vec<u8>) -> std::result::Result<BTreeMap<String, FileTensor>, String> {
    let read = std::panic::catch_unwind(move || {
        let reader =
            burn_store::pytorch::PytorchReader::from_reader(std::io::Cursor::new(bytes), None)
                .map_err(|e| e.to_string())?;
        let mut tensors = BTreeMap::new();
        for (name, snapshot) in reader.into_tensors() {
            let data = snapshot
                .to_data()
                .map_err(|e| format!("tensor `{name}`: {e}"))?;
            tensors.insert(
                name,
                FileTensor {
                    dtype: data.dtype,
                    shape: data.shape.to_vec(),
                    bytes: data.bytes.to_vec(),
                },
            );
        }
        Ok(tensors)
    });
    read.map_err(|payload| {
        format!(
            "not a readable PyTorch file: {}",
            panic_message(payload.as_ref())
        )
    })?
    .map_err(|e: String| format!("not a readable PyTorch file: {e}"))
}

/// Checks one file tensor against its parameter and makes its data, in burn's layout.
fn prepare(
    spec: &ParamSpec,
    tensor: FileTensor,
    layout: Layout,
    report: &mut ImportReport,
) -> std::result::Result<TensorData, String> {
    let name = &spec.path;
    let kind_fits = match spec.kind {
        ElementKind::Float => matches!(
            tensor.dtype,
            DType::F64 | DType::F32 | DType::F16 | DType::BF16
        ),
        ElementKind::Int => matches!(
            tensor.dtype,
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8
        ),
        ElementKind::Bool => matches!(tensor.dtype, DType::Bool(_)),
    };
    if !kind_fits {
        return Err(format!(
            "tensor `{name}` holds {:?}; the model's is {:?}",
            tensor.dtype, spec.kind
        ));
    }
    let elements = tensor
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("tensor `{name}`: shape {:?} overflows", tensor.shape))?;
    if elements.checked_mul(tensor.dtype.size()) != Some(tensor.bytes.len()) {
        return Err(format!(
            "tensor `{name}`: shape {:?} of {:?} needs {} bytes, the file holds {}",
            tensor.shape,
            tensor.dtype,
            elements.saturating_mul(tensor.dtype.size()),
            tensor.bytes.len()
        ));
    }
    let wanted = &spec.shape;
    let linear = is_linear_weight(&spec.container, name, wanted.len());
    let flipped: Vec<usize> = wanted.iter().rev().copied().collect();
    let torch = match layout {
        Layout::Torch => linear,
        Layout::Burn => false,
        // A square weight could be either: PyTorch's, the convention of files made elsewhere.
        Layout::Auto => linear && tensor.shape == flipped,
    };
    let expected = if torch { &flipped } else { wanted };
    if &tensor.shape != expected {
        return Err(format!(
            "tensor `{name}` has shape {:?} in the file, the model needs {:?}{}",
            tensor.shape,
            expected,
            if torch {
                " (PyTorch's [out, in] layout)"
            } else {
                ""
            }
        ));
    }
    let bytes = if torch {
        report.transposed.push(name.clone());
        transpose(
            &tensor.bytes,
            tensor.shape[0],
            tensor.shape[1],
            tensor.dtype.size(),
        )
    } else {
        tensor.bytes
    };
    Ok(TensorData::from_bytes_vec(
        bytes,
        wanted.clone(),
        tensor.dtype,
    ))
}

/// Replaces every parameter by its prepared data, keeping its id.
struct Loader<B: Backend> {
    path: Vec<String>,
    tensors: BTreeMap<String, TensorData>,
    device: B::Device,
}

impl<B: Backend> Loader<B> {
    fn take(&mut self) -> Option<TensorData> {
        self.tensors.remove(&self.path.join("."))
    }
}

impl<B: Backend> ModuleMapper<B> for Loader<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.take() {
            Some(data) => {
                Tensor::from_data(data.convert::<B::FloatElem>(), &self.device).require_grad()
            }
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }

    fn map_int<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Int>>,
    ) -> Param<Tensor<B, D, Int>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.take() {
            Some(data) => Tensor::from_data(data.convert::<B::IntElem>(), &self.device),
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }

    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Bool>>,
    ) -> Param<Tensor<B, D, Bool>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.take() {
            Some(data) => Tensor::from_data(data, &self.device),
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}
