//! Saving and loading only the trainable part of a model — a LoRA adapter, a new head — with
//! its optimizer state, keyed by the parameters' paths in the module (`layers.1.weight`), so
//! that it loads into a model built afresh, whose parameter ids differ.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Element, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use trainer_core::checkpoint::{check_optimizer_host, HostRecord};

use crate::error::HookResult;
use crate::state_dict::StateDict;

/// What [`save_trainable_module`] stores: the selected float parameters by path, and the
/// optimizer's state of each, by the same path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainableEntry<S> {
    /// Each selected parameter's path and value, in the module's order.
    pub params: Vec<(String, TensorData)>,
    /// The optimizer's state of each selected parameter that has one.
    pub optimizer: BTreeMap<String, S>,
}

/// Paths and ids of a module's float parameters (paths join field names and indices by `.`).
#[derive(Default)]
struct ParamPaths<B: AutodiffBackend> {
    stack: Vec<String>,
    found: Vec<(String, ParamId, TensorData, Vec<usize>)>,
    with_data: bool,
    backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ParamPaths<B> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let dims = tensor.dims().to_vec();
        let data = if self.with_data {
            tensor.into_data()
        } else {
            TensorData::new(Vec::<f32>::new(), [0])
        };
        self.found
            .push((self.stack.join("."), param.id, data, dims));
    }
}

fn param_paths<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    with_data: bool,
) -> Vec<(String, ParamId, TensorData, Vec<usize>)> {
    let mut visitor = ParamPaths::<B> {
        with_data,
        ..Default::default()
    };
    module.visit(&mut visitor);
    visitor.found
}

/// Stores under `key` the float parameters of `module` whose path `select` accepts, and
/// `optimizer`'s state of each (burn's optimizers keep it by parameter id; it is stored by
/// path). An empty selection is an error: it is almost always a filter that matches nothing.
///
/// Paths join the module's field names and indices with `.`, as burn names them:
/// `layers.1.weight`, `head.bias`.
pub fn save_trainable_module<B, M, O, R>(
    dict: &mut StateDict,
    key: &str,
    module: &M,
    optimizer: &O,
    select: impl Fn(&str) -> bool,
) -> HookResult<()>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B, Record = HashMap<ParamId, R>>,
    R: HostRecord<B>,
{
    let (selected, others): (Vec<_>, Vec<_>) = param_paths::<B, M>(module, true)
        .into_iter()
        .partition(|(path, ..)| select(path));
    if selected.is_empty() {
        let paths: Vec<_> = others.iter().map(|(path, ..)| path.as_str()).collect();
        return Err(format!(
            "`{key}`: the filter selects no parameter of the module (its parameters: {})",
            paths.join(", ")
        )
        .into());
    }
    let mut states = optimizer.to_record();
    let mut entry = TrainableEntry {
        params: Vec::new(),
        optimizer: BTreeMap::new(),
    };
    for (path, id, data, _) in selected {
        if let Some(state) = states.remove(&id) {
            entry.optimizer.insert(path.clone(), state.to_host());
        }
        entry.params.push((path, data));
    }
    dict.put(key, &entry)
}

/// Replaces the selected parameters' values, keeping their ids.
struct LoadSelected<'a> {
    stack: Vec<String>,
    values: &'a BTreeMap<String, TensorData>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for LoadSelected<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        match self.values.get(&self.stack.join(".")) {
            Some(data) => param.map(|tensor| {
                let device = tensor.device();
                let loaded = Tensor::<B, D>::from_data(data.clone(), &device);
                if tensor.is_require_grad() {
                    loaded.require_grad()
                } else {
                    loaded
                }
            }),
            None => param,
        }
    }
}

/// Loads what [`save_trainable_module`] stored under `key` into `module` and `optimizer`:
/// each stored parameter into the parameter of the same path (its id stays the module's), and
/// its optimizer state under that id; the other parameters and their state are left as they
/// are. Checked before burn sees anything: every stored path is a float parameter of the
/// module, with the same shape and element type, else an error names it.
pub fn load_trainable_module<B, M, O, R>(
    dict: &StateDict,
    key: &str,
    module: M,
    optimizer: O,
    device: &B::Device,
) -> HookResult<(M, O)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B, Record = HashMap<ParamId, R>>,
    R: HostRecord<B>,
    HashMap<ParamId, R>: HostRecord<B>,
{
    let entry: TrainableEntry<R::Host> = dict.get(key)?;
    let params: BTreeMap<String, (ParamId, Vec<usize>)> = param_paths::<B, M>(&module, false)
        .into_iter()
        .map(|(path, id, _, dims)| (path, (id, dims)))
        .collect();
    let float = B::FloatElem::dtype();
    let mut values = BTreeMap::new();
    for (path, data) in entry.params {
        let Some((_, dims)) = params.get(&path) else {
            return Err(format!(
                "`{key}`: {path:?} is not a float parameter of the module (it has: {})",
                params.keys().cloned().collect::<Vec<_>>().join(", ")
            )
            .into());
        };
        if data.shape.to_vec() != *dims {
            return Err(format!(
                "`{key}`: {path:?} has shape {:?}, the module's parameter {dims:?}",
                data.shape
            )
            .into());
        }
        let expected = data.shape.iter().product::<usize>() * data.dtype.size();
        if data.dtype != float || data.bytes.len() != expected {
            return Err(format!(
                "`{key}`: {path:?} holds {} bytes of {:?}; the module needs {:?}",
                data.bytes.len(),
                data.dtype,
                float
            )
            .into());
        }
        values.insert(path, data);
    }
    let mut states = optimizer.to_record();
    for (path, state) in entry.optimizer {
        let Some((id, _)) = params.get(&path).filter(|_| values.contains_key(&path)) else {
            return Err(format!(
                "`{key}`: optimizer state for {path:?}, which is not a stored parameter"
            )
            .into());
        };
        let state =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| R::from_host(state, device)))
                .map_err(|_| {
                    format!("`{key}`: the optimizer state of {path:?} cannot be loaded")
                })?;
        states.insert(*id, state);
    }
    let module = module.map(&mut LoadSelected {
        stack: Vec::new(),
        values: &values,
    });
    // Every state tensor must fit its parameter, or burn would panic at the next step.
    let host = states.to_host();
    check_optimizer_host::<B, M, _>(&host, None, &module).map_err(|e| format!("`{key}`: {e}"))?;
    let states = <HashMap<ParamId, R> as HostRecord<B>>::from_host(host, device);
    let optimizer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        optimizer.load_record(states)
    }))
    .map_err(|_| format!("`{key}`: the optimizer state cannot be loaded"))?;
    Ok((module, optimizer))
}
