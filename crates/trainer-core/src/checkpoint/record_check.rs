//! Checks of a decoded record against the model it is meant for, before burn loads it: burn
//! trusts that a record's tensors have its module's shapes and that an optimizer's state matches
//! its parameters, and panics (or computes garbage) when they do not.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{backend::Backend, Bool, Int, Tensor};
use serde::{de::DeserializeOwned, Serialize};

use super::encoded_match::{encodes_to, encodes_to_any_entry_order};
use super::scan::scan_payload;
use super::scanned::{ElementKind, LentBins, RecordSource, ScannedTensor};

/// One parameter of a module: where it sits, its shape, its element kind and its id.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Field names joined by `.` (`hidden.0.weight`).
    pub path: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Float, int or bool.
    pub kind: ElementKind,
    /// Its id as records spell it.
    pub id: String,
    /// The type of the module that holds it (`Struct:Linear`), as burn's visitor names it.
    pub container: String,
}

/// Every parameter of `module`, in visiting order (the order of its record).
pub fn parameter_specs<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamSpec> {
    let mut visitor = SpecVisitor {
        path: Vec::new(),
        containers: Vec::new(),
        specs: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.specs
}

/// The tensors of a decoded record, in record order (the record encoded again, so that every
/// tensor serde decoded is seen in the one form the scan reads).
///
/// With the `source` the record was decoded from, the record is encoded again only to compare
/// it with those bytes as it goes (no copy of its tensors): when they are the same bytes, the
/// source's scan describes the record exactly, whatever order a file put its fields in.
pub fn record_tensors<T: Serialize>(
    record: &T,
    source: Option<RecordSource<'_>>,
) -> Result<Vec<ScannedTensor>, String> {
    tensors_of(record, source, encodes_to)
}

/// [`record_tensors`] of a record keyed by parameter id (an optimizer's state): the source
/// stands for the record when they hold the same entries in any order (a hash map writes its
/// entries in an order that changes between processes), and the tensors come in the source's
/// order then. Checks of such records do not depend on the order.
pub fn keyed_record_tensors<T: Serialize>(
    record: &T,
    source: Option<RecordSource<'_>>,
) -> Result<Vec<ScannedTensor>, String> {
    tensors_of(record, source, encodes_to_any_entry_order)
}

fn tensors_of<T: Serialize>(
    record: &T,
    source: Option<RecordSource<'_>>,
    encodes_to: fn(&T, &[u8], &LentBins) -> bool,
) -> Result<Vec<ScannedTensor>, String> {
    if let Some(source) = source {
        if encodes_to(record, source.encoded, source.lent) {
            // The scan's paths start with the payload field's name; the record's do not.
            return Ok(source
                .tensors
                .iter()
                .map(|tensor| ScannedTensor {
                    path: tensor
                        .path
                        .split_once('.')
                        .map_or(String::new(), |(_, rest)| rest.to_string()),
                    ..tensor.clone()
                })
                .collect());
        }
    }
    // Under one field, so that the scan keeps the record's own order: a scan groups tensors
    // by top-level field, by name, and a record whose fields are tensors (a bare `Linear`:
    // `weight`, `bias`) or modules (`encoder`, `decoder`) would come back sorted.
    #[derive(Serialize)]
    struct Wrapped<'a, T> {
        record: &'a T,
    }
    let bytes = rmp_serde::to_vec_named(&Wrapped { record })
        .map_err(|e| format!("the record does not encode: {e}"))?;
    Ok(scan_payload(&bytes)?
        .field("record")
        .iter()
        .map(|tensor| ScannedTensor {
            path: tensor
                .path
                .split_once('.')
                .map_or(String::new(), |(_, rest)| rest.to_string()),
            ..tensor.clone()
        })
        .collect())
}

/// Checks a decoded module record against the parameters of the model it will load into: the
/// same number of tensors, each of the model's shape and element kind, with distinct ids. The
/// error names the tensor.
pub fn check_module_record(record: &[ScannedTensor], model: &[ParamSpec]) -> Result<(), String> {
    if record.len() != model.len() {
        return Err(format!(
            "the checkpoint holds {} parameter tensors, the model {}",
            record.len(),
            model.len()
        ));
    }
    let mut ids = BTreeMap::new();
    for (tensor, param) in record.iter().zip(model) {
        if tensor.shape != param.shape {
            return Err(format!(
                "tensor `{}` has shape {:?} in the checkpoint, {:?} in the model",
                param.path, tensor.shape, param.shape
            ));
        }
        if tensor.dtype.kind != param.kind {
            return Err(format!(
                "tensor `{}` holds {} in the checkpoint; the model's is {:?}",
                param.path, tensor.dtype.name, param.kind
            ));
        }
        let Some(id) = &tensor.param_id else {
            return Err(format!("tensor `{}` has no parameter id", param.path));
        };
        if let Some(first) = ids.insert(id.clone(), &param.path) {
            return Err(format!(
                "tensors `{first}` and `{}` share the parameter id {id:?}",
                param.path
            ));
        }
    }
    Ok(())
}

/// Whether records of type `T` are maps keyed by parameter id (burn's optimizers keep their
/// state so): such a record decodes from an empty map.
pub fn keyed_by_param_id<T: DeserializeOwned>() -> bool {
    rmp_serde::from_slice::<T>(&[0x80]).is_ok()
}

/// Checks a decoded optimizer record, keyed by parameter id, against the parameters it will
/// update: every key is one of theirs, and every state tensor has its parameter's shape (and
/// the rank its `RankN` variant declares), holding floats.
pub fn check_optimizer_record(
    record: &[ScannedTensor],
    params: &[ParamSpec],
) -> Result<(), String> {
    let by_id: BTreeMap<&str, &ParamSpec> = params.iter().map(|p| (p.id.as_str(), p)).collect();
    for tensor in record {
        let id = tensor.path.split('.').next().unwrap_or_default();
        let Some(param) = by_id.get(id) else {
            return Err(format!(
                "optimizer state `{}` is for parameter id {id:?}, which the model does not have",
                tensor.path
            ));
        };
        if tensor.shape != param.shape {
            return Err(format!(
                "optimizer state `{}` of parameter `{}` has shape {:?}, the parameter {:?}",
                tensor.path, param.path, tensor.shape, param.shape
            ));
        }
        if tensor
            .declared_rank
            .is_some_and(|rank| rank != tensor.shape.len())
        {
            return Err(format!(
                "optimizer state `{}` is declared with another rank than its shape {:?}",
                tensor.path, tensor.shape
            ));
        }
        if tensor.dtype.kind != ElementKind::Float {
            return Err(format!(
                "optimizer state `{}` holds {}, not floats",
                tensor.path, tensor.dtype.name
            ));
        }
    }
    Ok(())
}

struct SpecVisitor {
    path: Vec<String>,
    containers: Vec<String>,
    specs: Vec<ParamSpec>,
}

impl SpecVisitor {
    fn record(&mut self, shape: &[usize], kind: ElementKind, id: String) {
        let container = self.containers.last().cloned().unwrap_or_default();
        self.specs.push(ParamSpec {
            path: self.path.join("."),
            shape: shape.to_vec(),
            kind,
            id,
            container,
        });
    }
}

impl<B: Backend> ModuleVisitor<B> for SpecVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.record(
            &param.lazy_shape().to_vec(),
            ElementKind::Float,
            param.id.serialize(),
        );
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.record(
            &param.lazy_shape().to_vec(),
            ElementKind::Int,
            param.id.serialize(),
        );
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.record(
            &param.lazy_shape().to_vec(),
            ElementKind::Bool,
            param.id.serialize(),
        );
    }
}
