//! A checkpoint's module as a safetensors file, read from the checkpoint alone (no model type):
//! tensors named by their record paths, the run's metadata in the header.

use std::collections::HashMap;

use rmpv::Value;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::layout::{transpose, Layout};
use crate::checkpoint::{scan_payload, verify, HEADER_LEN};
use crate::error::{Result, TrainerError};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub bytes: u64,
    /// The layout written (`Auto` writes burn's).
    pub layout: Layout,
    /// `Linear` weights written transposed (PyTorch's layout).
    pub transposed: Vec<String>,
    /// With PyTorch's layout: tensors written as burn holds them, in layers this export does not
    /// know (their PyTorch layout may differ).
    pub unmapped: Vec<String>,
}

/// One tensor found in a module record.
struct Found<'a> {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: &'a [u8],
    linear_weight: bool,
}

/// The module of the checkpoint file `bytes` as a safetensors file: its tensors named by their
/// record paths (`layers.0.weight`), in `layout` (PyTorch's transposes `Linear` weights to
/// `[out, in]`), with the run's metadata (`trainer_version`, `burn_version`,
/// `checkpoint_format`, `step`, `epoch`, `layout`, `config`) in the header. The checkpoint is
/// checked as any other (header, checksum, the untrusted-bytes scan) first.
pub fn export_safetensors(
    bytes: &[u8],
    origin: &str,
    layout: Layout,
) -> Result<(Vec<u8>, ExportReport)> {
    let damaged = |detail: String| TrainerError::CheckpointDamaged {
        path: origin.to_string(),
        detail,
    };
    let header = verify(bytes, origin)?;
    let payload = &bytes[HEADER_LEN..];
    scan_payload(payload).map_err(damaged)?;
    let value = rmpv::decode::read_value(&mut &payload[..])
        .map_err(|e| damaged(format!("the payload does not decode: {e}")))?;
    let field = |name: &str| {
        value.as_map().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v)
        })
    };
    let module = field("module").ok_or_else(|| damaged("it holds no module record".into()))?;
    let mut found = Vec::new();
    collect(module, &mut Vec::new(), false, &mut found).map_err(damaged)?;
    if found.is_empty() {
        return Err(damaged("its module record holds no tensors".into()));
    }
    let torch = layout == Layout::Torch;
    let mut report = ExportReport {
        tensors: found.len(),
        bytes: 0,
        layout: if torch { Layout::Torch } else { Layout::Burn },
        transposed: Vec::new(),
        unmapped: Vec::new(),
    };
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for tensor in found {
        report.bytes += tensor.bytes.len() as u64;
        if torch && tensor.linear_weight {
            let (rows, columns) = (tensor.shape[0], tensor.shape[1]);
            let data = transpose(tensor.bytes, rows, columns, tensor.dtype.bitsize() / 8);
            report.transposed.push(tensor.name.clone());
            owned.push((tensor.name, tensor.dtype, vec![columns, rows], data));
        } else {
            if torch && !is_bias_of_linear(&tensor.name, &report.transposed) {
                report.unmapped.push(tensor.name.clone());
            }
            owned.push((
                tensor.name,
                tensor.dtype,
                tensor.shape,
                tensor.bytes.to_vec(),
            ));
        }
    }
    // A bias comes after its weight in a record: the ones of mapped layers were counted above
    // only when their weight came first; drop them from the unmapped list now.
    report
        .unmapped
        .retain(|name| !is_bias_of_linear(name, &report.transposed));
    let mut metadata = HashMap::new();
    let text = |key: &str| field(key).map(|v| v.to_string()).unwrap_or_default();
    metadata.insert(
        "format".to_string(),
        if torch { "pt".into() } else { "burn".into() },
    );
    metadata.insert("layout".to_string(), report.layout.name().into());
    metadata.insert(
        "checkpoint_format".to_string(),
        format!("{}.{}", header.major, header.minor),
    );
    metadata.insert(
        "trainer_version".to_string(),
        field("trainer_version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
    );
    metadata.insert(
        "burn_version".to_string(),
        field("burn_version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
    );
    metadata.insert("config".to_string(), text("config"));
    let state = field("state");
    let count = |key: &str| {
        state
            .and_then(|s| s.as_map())
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(0)
    };
    metadata.insert("step".to_string(), count("global_step").to_string());
    metadata.insert("epoch".to_string(), count("epoch").to_string());
    let views = owned
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| damaged(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| damaged(format!("cannot write safetensors: {e}")))?;
    Ok((file, report))
}

fn is_bias_of_linear(name: &str, weights: &[String]) -> bool {
    name.strip_suffix(".bias").is_some_and(|layer| {
        weights
            .iter()
            .any(|w| w.strip_suffix(".weight") == Some(layer))
    })
}

/// The tensors of a (scanned) module record: parameter records `{id, param: {bytes, shape,
/// dtype}}`, named by their paths. A map with a 2-D `weight` and a `bias` (none, or 1-D of the
/// weight's second size) is taken as a `Linear` layer.
fn collect<'a>(
    value: &'a Value,
    path: &mut Vec<String>,
    linear_weight: bool,
    out: &mut Vec<Found<'a>>,
) -> std::result::Result<(), String> {
    match value {
        Value::Map(entries) => {
            let get = |key: &str| {
                entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(_, v)| v)
            };
            if let (Some(_), Some(param)) = (get("id"), get("param")) {
                if let Some(tensor) = tensor(param, path, linear_weight)? {
                    out.push(tensor);
                }
                return Ok(());
            }
            let linear = is_linear(get("weight"), get("bias"));
            for (key, child) in entries {
                let key = key
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| key.to_string());
                let is_weight = linear && key == "weight";
                path.push(key);
                let walked = collect(child, path, is_weight, out);
                path.pop();
                walked?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                let walked = collect(item, path, false, out);
                path.pop();
                walked?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn is_linear(weight: Option<&Value>, bias: Option<&Value>) -> bool {
    let shape_of = |record: &Value| -> Option<Vec<u64>> {
        let param = record
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some("param"))?
            .1
            .as_map()?;
        let shape = param
            .iter()
            .find(|(k, _)| k.as_str() == Some("shape"))?
            .1
            .as_array()?;
        shape.iter().map(Value::as_u64).collect()
    };
    let Some(weight) = weight.and_then(shape_of).filter(|s| s.len() == 2) else {
        return false;
    };
    match bias {
        Some(Value::Nil) => true,
        Some(bias) => shape_of(bias).is_some_and(|b| b == [weight[1]]),
        None => false,
    }
}

fn tensor<'a>(
    record: &'a Value,
    path: &[String],
    linear_weight: bool,
) -> std::result::Result<Option<Found<'a>>, String> {
    let name = path.join(".");
    let Some(fields) = record.as_map() else {
        return Ok(None);
    };
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    };
    let (Some(Value::Binary(bytes)), Some(Value::Array(shape)), Some(dtype)) =
        (get("bytes"), get("shape"), get("dtype"))
    else {
        return Ok(None);
    };
    let shape: Vec<usize> = shape
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("tensor `{name}`: a shape that is not integers"))?;
    let dtype = match dtype {
        Value::String(s) => match s.as_str() {
            Some("F64") => Dtype::F64,
            Some("F32") => Dtype::F32,
            Some("F16") => Dtype::F16,
            Some("BF16") => Dtype::BF16,
            Some("I64") => Dtype::I64,
            Some("I32") => Dtype::I32,
            Some("I16") => Dtype::I16,
            Some("I8") => Dtype::I8,
            Some("U64") => Dtype::U64,
            Some("U32") => Dtype::U32,
            Some("U16") => Dtype::U16,
            Some("U8") => Dtype::U8,
            other => {
                return Err(format!(
                    "tensor `{name}`: dtype {other:?} has no safetensors type"
                ))
            }
        },
        Value::Map(entries)
            if entries.len() == 1
                && entries[0].0.as_str() == Some("Bool")
                && entries[0].1.as_str() == Some("Native") =>
        {
            Dtype::BOOL
        }
        other => {
            return Err(format!(
                "tensor `{name}`: dtype {other} has no safetensors type"
            ))
        }
    };
    Ok(Some(Found {
        name,
        dtype,
        shape,
        bytes,
        linear_weight,
    }))
}
