use burn::module::Module;
use burn::record::{FullPrecisionSettings, Record};
use burn::tensor::backend::Backend;

use super::record_check::{
    check_module_record, check_optimizer_record, keyed_by_param_id, keyed_record_tensors,
    parameter_specs, record_tensors,
};
use super::scanned::RecordSource;
use serde::{de::DeserializeOwned, Serialize};

/// A burn record that can leave the device as plain host data, at full precision. Every
/// record whose serializable item is `Send` is one: all of burn's modules and optimizers.
pub trait HostRecord<B: Backend>: Record<B> + 'static {
    /// The record's data on the host.
    type Host: Serialize + DeserializeOwned + Send + 'static;

    /// Copies the record to the host (the device-to-host copy happens here).
    fn to_host(self) -> Self::Host;

    /// Makes the record again on `device`.
    fn from_host(host: Self::Host, device: &B::Device) -> Self;
}

impl<B, R> HostRecord<B> for R
where
    B: Backend,
    R: Record<B> + 'static,
    R::Item<FullPrecisionSettings>: Send + 'static,
{
    type Host = R::Item<FullPrecisionSettings>;

    fn to_host(self) -> Self::Host {
        self.into_item::<FullPrecisionSettings>()
    }

    fn from_host(host: Self::Host, device: &B::Device) -> Self {
        R::from_item::<FullPrecisionSettings>(host, device)
    }
}

/// Loads a module's host record into `module`, checked first against the module's parameters
/// (count, shapes, element kinds, ids: see [`check_module_record`]) so that burn never sees a
/// record that does not fit. The error names the first tensor that does not fit. `source`, the
/// bytes the record was decoded from and their scan when the caller has them, spares encoding
/// the record again for the checks (see [`record_tensors`]).
pub fn load_module_host<B, M>(
    module: M,
    host: <M::Record as HostRecord<B>>::Host,
    source: Option<RecordSource<'_>>,
    device: &B::Device,
) -> Result<M, String>
where
    B: Backend,
    M: Module<B>,
    M::Record: HostRecord<B>,
{
    check_module_record(
        &record_tensors(&host, source)?,
        &parameter_specs::<B, M>(&module),
    )?;
    // The checks above leave burn nothing to refuse; the guard stays for records of modules
    // whose own `load_record` panics on something else.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        module.load_record(<M::Record as HostRecord<B>>::from_host(host, device))
    }))
    .map_err(|_| "it holds tensor data burn cannot load".to_string())
}

/// Checks a decoded optimizer record against the parameters of `model` (loaded from the same
/// checkpoint, so that the ids agree) before burn loads it: for optimizers whose state is keyed
/// by parameter id (all of burn's), every key is a parameter of the model and every state tensor
/// has its parameter's shape. Other optimizers' records are left to their own loading.
pub fn check_optimizer_host<B, M, H>(
    host: &H,
    source: Option<RecordSource<'_>>,
    model: &M,
) -> Result<(), String>
where
    B: Backend,
    M: Module<B>,
    H: Serialize + DeserializeOwned,
{
    if !keyed_by_param_id::<H>() {
        return Ok(());
    }
    check_optimizer_record(
        &keyed_record_tensors(host, source)?,
        &parameter_specs::<B, M>(model),
    )
}
