use burn::module::{Module, ModuleVisitor, Param};
use burn::record::{FullPrecisionSettings, Record};
use burn::tensor::{backend::Backend, Bool, Int, Tensor};
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

/// The path and shape of every parameter of a module, in visiting order.
pub fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut visitor = ShapeVisitor { path: Vec::new(), shapes: Vec::new() };
    module.visit(&mut visitor);
    visitor.shapes
}

/// Compares the parameters of the model before and after loading a record; the first
/// difference is described, naming the tensor.
pub fn shape_mismatch(
    expected: &[(String, Vec<usize>)],
    loaded: &[(String, Vec<usize>)],
) -> Option<String> {
    for ((name, want), (_, got)) in expected.iter().zip(loaded) {
        if want != got {
            return Some(format!(
                "tensor `{name}` has shape {got:?} in the checkpoint, {want:?} in the model"
            ));
        }
    }
    (expected.len() != loaded.len()).then(|| {
        format!(
            "the checkpoint holds {} parameter tensors, the model {}",
            loaded.len(),
            expected.len()
        )
    })
}

struct ShapeVisitor {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl ShapeVisitor {
    fn record(&mut self, shape: Vec<usize>) {
        self.shapes.push((self.path.join("."), shape));
    }
}

impl<B: Backend> ModuleVisitor<B> for ShapeVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.record(param.lazy_shape().to_vec());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.record(param.lazy_shape().to_vec());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.record(param.lazy_shape().to_vec());
    }
}

/// Loads a module's host record into `module` without panicking: burn panics on tensor data
/// that contradicts its shape, and a crafted file must not crash the program. The error says
/// what did not fit, naming the first tensor whose shape differs from the module's.
pub fn load_module_host<B, M>(module: M, host: <M::Record as HostRecord<B>>::Host, device: &B::Device) -> Result<M, String>
where
    B: Backend,
    M: Module<B>,
    M::Record: HostRecord<B>,
{
    let expected = parameter_shapes::<B, M>(&module);
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        module.load_record(<M::Record as HostRecord<B>>::from_host(host, device))
    }))
    .map_err(|_| "it holds tensor data burn cannot load".to_string())?;
    match shape_mismatch(&expected, &parameter_shapes::<B, M>(&loaded)) {
        Some(detail) => Err(detail),
        None => Ok(loaded),
    }
}
