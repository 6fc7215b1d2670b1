//! Checkpoint payloads as MessagePack values, for tests that tamper with them.

use rmpv::Value;

/// The field `name` of a map value.
pub fn field<'a>(value: &'a mut Value, name: &str) -> &'a mut Value {
    match value {
        Value::Map(entries) => {
            &mut entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(name))
                .unwrap_or_else(|| panic!("no field {name}"))
                .1
        }
        other => panic!("not a map: {other}"),
    }
}

/// Every tensor record (`{bytes, shape, dtype}`) under `value`, in order.
pub fn tensors(value: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    fn walk<'a>(value: &'a mut Value, out: &mut Vec<&'a mut Value>) {
        let is_tensor = matches!(value, Value::Map(entries) if entries.iter().any(|(k, _)| k.as_str() == Some("bytes")));
        if is_tensor {
            out.push(value);
            return;
        }
        match value {
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| walk(v, out)),
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(value, &mut out);
    out
}
