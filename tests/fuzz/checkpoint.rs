//! Mutated checkpoints: the payload of a real checkpoint, changed where it matters (tensor
//! shapes, dtypes, byte lengths, parameter ids, any value, raw bytes), with a valid header and
//! checksum, loaded by the supervised trainer (then trained on when it loads; its large tensors
//! are read apart from the rest, [`HIDDEN`]), summarized as `trainer inspect` does, and loaded
//! as a job's state dict.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::digits::{self, DigitItem, DigitsBatcher};
use crate::support::mlp::{Mlp, MlpConfig};
use burn::data::dataset::InMemDataset;
use burn::optim::{adaptor::OptimizerAdaptor, Adam, AdamConfig};
use proptest::prelude::*;
use rmpv::Value;
use trainer_core::checkpoint::{decode, CheckpointSummary, Header, HEADER_LEN};
use trainer_core::prelude::*;
use trainer_job::StateDict;

type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;

/// What a case starts from: a real checkpoint's payload and a state dict of the same records.
struct Seeds {
    payload: Value,
    state_dict: Value,
    data: digits::Splits<DigitItem>,
    dir: PathBuf,
}

/// Hidden units of the fuzzed model: its first layer's weight (64 × 256 floats) and that
/// weight's two Adam moments are 64 KiB each, so a load reads them apart from the skeleton
/// (`checkpoint/lent_load.rs`) and the mutations reach that path as well as the whole-file one.
const HIDDEN: usize = 256;

fn config(epochs: usize) -> TrainerConfig {
    TrainerConfig::new(1e-3)
        .with_epochs(Some(epochs))
        .with_batch_size(64)
        .with_seed(3)
}

/// The trainer the fuzzed checkpoints are loaded into.
type DigitsTrainer = SupervisedTrainer<
    B,
    Mlp<B>,
    OptimizerAdaptor<Adam, Mlp<B>, B>,
    crate::support::digits::DigitsBatch<B>,
    crate::support::digits::DigitsBatch<burn_ndarray::NdArray<f32>>,
>;

fn trainer(data: &digits::Splits<DigitItem>, epochs: usize) -> DigitsTrainer {
    let device = Default::default();
    let model = MlpConfig::new(digits::PIXELS, vec![HIDDEN], digits::CLASSES)
        .with_dropout(0.1)
        .init::<B>(1, &device);
    SupervisedTrainer::builder(model, AdamConfig::new().init(), config(epochs), device)
        .train_data(InMemDataset::new(data.train.clone()), DigitsBatcher)
        .build()
        .unwrap()
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let items = digits::load(digits::bundled_path()).unwrap();
        let data = digits::split(items, 0, 0.15, 0.15);
        let dir =
            std::env::temp_dir().join(format!("trainer-fuzz-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = trainer(&data, 1);
        t.fit().unwrap();
        let path = dir.join("seed.ckpt");
        t.save_checkpoint(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let payload = rmpv::decode::read_value(&mut &bytes[HEADER_LEN..]).unwrap();
        let record = |name: &str| {
            payload
                .as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .unwrap()
                .1
                .clone()
        };
        let entries = Value::Map(vec![
            (Value::from("model"), record("module")),
            (Value::from("optimizer"), record("optimizer")),
        ]);
        let state_dict = Value::Map(vec![(Value::from("entries"), entries)]);
        Seeds {
            payload,
            state_dict,
            data,
            dir,
        }
    })
}

/// A value put in place of another.
#[derive(Debug, Clone)]
enum Replacement {
    Nil,
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Bin(usize),
    EmptyArray,
    EmptyMap,
    Deep(usize),
    Enum(String),
}

impl Replacement {
    fn value(&self) -> Value {
        match self {
            Replacement::Nil => Value::Nil,
            Replacement::Int(v) => Value::from(*v),
            Replacement::Uint(v) => Value::from(*v),
            Replacement::Float(v) => Value::from(*v),
            Replacement::Str(s) => Value::from(s.as_str()),
            Replacement::Bin(n) => Value::Binary(vec![0x5a; *n]),
            Replacement::EmptyArray => Value::Array(Vec::new()),
            Replacement::EmptyMap => Value::Map(Vec::new()),
            Replacement::Deep(depth) => {
                (0..*depth).fold(Value::Nil, |inner, _| Value::Array(vec![inner]))
            }
            Replacement::Enum(variant) => Value::Map(vec![(
                Value::from(variant.as_str()),
                Value::Map(Vec::new()),
            )]),
        }
    }
}

fn replacement() -> impl Strategy<Value = Replacement> {
    prop_oneof![
        Just(Replacement::Nil),
        prop_oneof![
            Just(i64::MIN),
            Just(-1i64),
            Just(0),
            Just(1),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(Replacement::Int),
        prop_oneof![
            Just(u64::MAX),
            Just(1u64 << 32),
            Just(1u64 << 40),
            any::<u64>()
        ]
        .prop_map(Replacement::Uint),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(1.7e308),
            any::<f64>()
        ]
        .prop_map(Replacement::Float),
        prop_oneof![
            Just("F64".to_string()),
            Just("I64".to_string()),
            Just("U8".to_string()),
            Just("Flex32".to_string()),
            Just("Bool".to_string()),
            Just(String::new()),
            "[a-z0-9]{0,40}",
        ]
        .prop_map(Replacement::Str),
        // Small, and as large as a tensor read apart (outside a tensor record it is not).
        prop_oneof![0usize..4096, 65_536usize..65_600].prop_map(Replacement::Bin),
        Just(Replacement::EmptyArray),
        Just(Replacement::EmptyMap),
        (100usize..400).prop_map(Replacement::Deep),
        prop_oneof![
            Just("Rank3".to_string()),
            Just("V2".to_string()),
            Just("QFloat".to_string())
        ]
        .prop_map(Replacement::Enum),
    ]
}

/// One change to a payload.
#[derive(Debug, Clone)]
enum Mutation {
    /// Any node (a map key or value, an array item) of the tree.
    Node(usize, Replacement),
    /// A tensor's shape.
    Shape(usize, Vec<u64>),
    /// A tensor's dtype.
    Dtype(usize, Value),
    /// A tensor's byte length.
    Bytes(usize, usize),
    /// A parameter's id.
    Id(usize, String),
    /// A byte of the encoded payload.
    Byte(usize, u8),
    /// The encoded payload cut short.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let dim = prop_oneof![
        Just(0u64),
        Just(1),
        Just(16),
        Just(64),
        Just(u64::MAX),
        Just(1 << 33),
        0u64..100
    ];
    let dtype = prop_oneof![
        prop_oneof![
            Just("F32"),
            Just("F64"),
            Just("F16"),
            Just("BF16"),
            Just("I32"),
            Just("I64"),
            Just("U8"),
            Just("I8"),
            Just("X")
        ]
        .prop_map(Value::from),
        prop_oneof![Just("Native"), Just("U8"), Just("U32"), Just("Other")]
            .prop_map(|s| Value::Map(vec![(Value::from("Bool"), Value::from(s))])),
        Just(Value::Map(vec![(
            Value::from("QFloat"),
            Value::Map(Vec::new())
        )])),
        any::<u8>().prop_map(Value::from),
    ];
    prop_oneof![
        3 => (any::<usize>(), replacement()).prop_map(|(at, r)| Mutation::Node(at, r)),
        2 => (any::<usize>(), proptest::collection::vec(dim, 0..20)).prop_map(|(at, d)| Mutation::Shape(at, d)),
        2 => (any::<usize>(), dtype).prop_map(|(at, d)| Mutation::Dtype(at, d)),
        2 => (any::<usize>(), prop_oneof![0usize..9000, 65_528usize..65_545]).prop_map(|(at, n)| Mutation::Bytes(at, n)),
        1 => (any::<usize>(), prop_oneof![Just("aaaaaaaaaaaaaaaaaaaaaaaa".to_string()), "[0-9a-z-]{0,40}"]).prop_map(|(at, id)| Mutation::Id(at, id)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Byte(at, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Paths (child indices; in a map `2i` is the key of entry `i`, `2i + 1` its value) of every
/// node, in preorder.
fn nodes(value: &Value, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(path.clone());
    let children: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    for (i, child) in children.into_iter().enumerate() {
        path.push(i);
        nodes(child, path, out);
        path.pop();
    }
}

/// The node at `path`, if the tree (changed by earlier mutations) still has it.
fn node_mut<'a>(value: &'a mut Value, path: &[usize]) -> Option<&'a mut Value> {
    let Some((&first, rest)) = path.split_first() else {
        return Some(value);
    };
    let child = match value {
        Value::Array(items) => items.get_mut(first)?,
        Value::Map(entries) => {
            let entry = entries.get_mut(first / 2)?;
            if first % 2 == 0 {
                &mut entry.0
            } else {
                &mut entry.1
            }
        }
        _ => return None,
    };
    node_mut(child, rest)
}

/// Paths of the maps that have a key `key`.
fn maps_with(value: &Value, key: &str) -> Vec<Vec<usize>> {
    let mut all = Vec::new();
    nodes(value, &mut Vec::new(), &mut all);
    all.into_iter()
        .filter(|p| {
            let mut v = value.clone();
            matches!(node_mut(&mut v, p), Some(Value::Map(entries)) if entries.iter().any(|(k, _)| k.as_str() == Some(key)))
        })
        .collect()
}

fn set_field(map: Option<&mut Value>, key: &str, to: Value) {
    if let Some(Value::Map(entries)) = map {
        if let Some(entry) = entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
            entry.1 = to;
        }
    }
}

/// The payload with `mutations` applied, as the bytes of a checkpoint file with a valid header.
fn mutated(seed: &Value, mutations: &[Mutation]) -> Vec<u8> {
    let mut value = seed.clone();
    let tensors = maps_with(seed, "bytes");
    let params = maps_with(seed, "id");
    let mut raw = Vec::new();
    for mutation in mutations {
        match mutation {
            Mutation::Node(at, with) => {
                let mut all = Vec::new();
                nodes(&value, &mut Vec::new(), &mut all);
                let path = &all[at % all.len()];
                if let Some(node) = node_mut(&mut value, path) {
                    *node = with.value();
                }
            }
            Mutation::Shape(at, dims) => {
                let tensor = node_mut(&mut value, &tensors[at % tensors.len()]);
                set_field(
                    tensor,
                    "shape",
                    Value::Array(dims.iter().map(|&d| Value::from(d)).collect()),
                );
            }
            Mutation::Dtype(at, dtype) => set_field(
                node_mut(&mut value, &tensors[at % tensors.len()]),
                "dtype",
                dtype.clone(),
            ),
            Mutation::Bytes(at, n) => set_field(
                node_mut(&mut value, &tensors[at % tensors.len()]),
                "bytes",
                Value::Binary(vec![1; *n]),
            ),
            Mutation::Id(at, id) => set_field(
                node_mut(&mut value, &params[at % params.len()]),
                "id",
                Value::from(id.as_str()),
            ),
            Mutation::Byte(..) | Mutation::Truncate(_) => raw.push(mutation.clone()),
        }
    }
    // Earlier tree mutations may have replaced the tensors; later ones act on what is there.
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, &value).unwrap();
    for mutation in raw {
        match mutation {
            Mutation::Byte(at, byte) if !body.is_empty() => {
                let at = at % body.len();
                body[at] = byte;
            }
            Mutation::Truncate(at) if !body.is_empty() => body.truncate(at % body.len()),
            _ => {}
        }
    }
    let mut file = Header::for_payload(&body).to_bytes().to_vec();
    file.extend_from_slice(&body);
    file
}

/// Loads `bytes` every way a checkpoint is loaded; the load's own peak memory must stay within
/// a small multiple of the file size.
fn load_every_way(bytes: Vec<u8>, case: usize) {
    let seeds = seeds();
    let path = seeds.dir.join(format!("case-{case}.ckpt"));
    std::fs::write(&path, &bytes).unwrap();
    let cap = 16 * bytes.len() + (8 << 20);
    let mut t = trainer(&seeds.data, 2);
    let before = crate::alloc::reset_peak();
    let loaded = t.load_checkpoint(&path);
    let peak = crate::alloc::peak().saturating_sub(before);
    assert!(
        peak <= cap,
        "loading a {} byte file peaked at {peak} bytes (cap {cap})",
        bytes.len()
    );
    if loaded.is_ok() {
        // What loads must also train: a wrong-shaped state would surface at the first step.
        let _ = t.fit();
    }
    let _ = CheckpointSummary::from_bytes(&bytes, "fuzz");
    std::fs::remove_file(&path).unwrap();
}

/// Loads `bytes` as a job's state dict: the model, then the optimizer against it.
fn load_state_dict(bytes: &[u8]) {
    let Ok(dict) = decode::<StateDict>(bytes, "fuzz") else {
        return;
    };
    let device = Default::default();
    let model = MlpConfig::new(digits::PIXELS, vec![HIDDEN], digits::CLASSES).init::<B>(9, &device);
    let Ok(model) = dict.load_module::<B, _>("model", model, &device) else {
        return;
    };
    let optimizer: OptimizerAdaptor<Adam, Mlp<B>, B> = AdamConfig::new().init();
    let _ = dict.load_optimizer::<B, _, _>("optimizer", optimizer, &model, &device);
}

#[test]
fn mutated_checkpoints_load_or_fail_cleanly() {
    let _ = seeds();
    crate::panics::install();
    let mut runner = crate::runner();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&proptest::collection::vec(mutation(), 1..4), |mutations| {
            let case = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = mutated(&seeds().payload, &mutations);
            let dict = mutated(&seeds().state_dict, &mutations);
            crate::guarded("checkpoint load", 1 << 30, move || {
                crate::panics::expect_none(|| {
                    load_every_way(file, case);
                    load_state_dict(&dict);
                })
            })
            .map_err(|e| TestCaseError::fail(format!("{e}\nmutations: {mutations:?}")))
        })
        .unwrap();
}
