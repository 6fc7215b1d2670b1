use std::collections::BTreeMap;

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use trainer_core::checkpoint::{check_optimizer_host, load_module_host, HostRecord};

use crate::error::HookResult;

/// A trainer's state as named entries (model, optimizer, counters...), which the runtime
/// writes into checkpoints and hands back on resume. Values are MessagePack values; burn
/// records are stored at full precision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateDict {
    entries: BTreeMap<String, rmpv::Value>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores any serializable value under `key`, structs as maps with their field names (as
    /// the rest of the checkpoint), so `trainer inspect` and other readers can find tensors.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> HookResult<()> {
        let bytes =
            rmp_serde::to_vec_named(value).map_err(|e| format!("state entry `{key}`: {e}"))?;
        let value = rmpv::decode::read_value(&mut bytes.as_slice())
            .map_err(|e| format!("state entry `{key}`: {e}"))?;
        self.entries.insert(key.to_string(), value);
        Ok(())
    }

    /// Reads the value stored under `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> HookResult<T> {
        let value = self.entries.get(key).ok_or_else(|| {
            format!(
                "the state has no entry `{key}` (it has: {})",
                self.keys().join(", ")
            )
        })?;
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, value)
            .map_err(|e| format!("state entry `{key}`: {e}"))?;
        // Checkpoints are scanned before they become state dicts; the guard is the last net
        // for values serde reads in an unusual form.
        let decoded = std::panic::catch_unwind(|| rmp_serde::from_slice(&bytes))
            .map_err(|_| format!("state entry `{key}` holds data the decoder cannot read"))?;
        Ok(decoded.map_err(|e| format!("state entry `{key}`: {e}"))?)
    }

    /// Stores a burn record (a module's or an optimizer's) at full precision.
    pub fn put_record<B: Backend, R: HostRecord<B>>(
        &mut self,
        key: &str,
        record: R,
    ) -> HookResult<()> {
        self.put(key, &record.to_host())
    }

    /// Reads a burn record onto `device` (data that burn cannot load is an error, not a panic).
    pub fn get_record<B: Backend, R: HostRecord<B>>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> HookResult<R> {
        let host = self.get(key)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| R::from_host(host, device)))
            .map_err(|_| format!("state entry `{key}` holds tensor data burn cannot load").into())
    }

    /// Stores a module's parameters.
    pub fn put_module<B: Backend, M: Module<B>>(&mut self, key: &str, module: &M) -> HookResult<()>
    where
        M::Record: HostRecord<B>,
    {
        // burn initialises parameters lazily, and a clone of a parameter not yet initialised
        // draws its own values: initialise them in `module` first, so that what is stored is
        // what the module holds.
        trainer_core::init::materialize(module);
        self.put_record::<B, _>(key, module.clone().into_record())
    }

    /// Loads the parameters stored under `key` into `module`; a tensor whose shape differs from
    /// the module's is an error naming it.
    pub fn load_module<B: Backend, M: Module<B>>(
        &self,
        key: &str,
        module: M,
        device: &B::Device,
    ) -> HookResult<M>
    where
        M::Record: HostRecord<B>,
    {
        Ok(
            load_module_host::<B, M>(module, self.get(key)?, None, device)
                .map_err(|e| format!("state entry `{key}`: {e}"))?,
        )
    }

    /// Loads the optimizer state stored under `key` into `optimizer`, checked first against the
    /// parameters of `model` (loaded from the same state dict, so that the ids agree): every
    /// state tensor belongs to one of its parameters and has its shape.
    pub fn load_optimizer<B, M, O>(
        &self,
        key: &str,
        optimizer: O,
        model: &M,
        device: &B::Device,
    ) -> HookResult<O>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
        O::Record: HostRecord<B>,
    {
        let host: <O::Record as HostRecord<B>>::Host = self.get(key)?;
        check_optimizer_host::<B, M, _>(&host, None, model)
            .map_err(|e| format!("state entry `{key}`: {e}"))?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            optimizer.load_record(O::Record::from_host(host, device))
        }))
        .map_err(|_| format!("state entry `{key}` holds tensor data burn cannot load").into())
    }

    /// The raw bytes of every tensor stored under `key`, in storage order: for comparing the
    /// tensors of two runs bit for bit.
    pub fn tensor_bytes(&self, key: &str) -> HookResult<Vec<Vec<u8>>> {
        fn collect(value: &rmpv::Value, out: &mut Vec<Vec<u8>>) {
            match value {
                rmpv::Value::Binary(bytes) => out.push(bytes.clone()),
                rmpv::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                rmpv::Value::Map(entries) => entries.iter().for_each(|(_, v)| collect(v, out)),
                _ => {}
            }
        }
        let value = self.entries.get(key).ok_or_else(|| {
            format!(
                "the state has no entry `{key}` (it has: {})",
                self.keys().join(", ")
            )
        })?;
        let mut out = Vec::new();
        collect(value, &mut out);
        Ok(out)
    }

    /// The entries' keys.
    pub fn keys(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }
}
