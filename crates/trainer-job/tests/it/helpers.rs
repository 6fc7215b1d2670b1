//! The helper kit: seeding, PyTorch's AdamW bundle and its schedule, and the trainable part of
//! a model saved and loaded with its optimizer state.

use crate::common::B;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Tensor};
use trainer_core::checkpoint::HostRecord;
use trainer_job::helpers::{
    default_adamw_bundle, float_scalar, load_trainable_module, save_trainable_module,
    seed_everything,
};
use trainer_job::StateDict;

/// burn's backend RNG is one per process and the tests of this binary run on parallel threads:
/// the tests that seed it or draw from it (initialising a layer draws) hold this lock.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Module, Debug)]
struct Net<B: burn::tensor::backend::Backend> {
    layers: Vec<Linear<B>>,
}

fn net(seed: u64, hidden: usize) -> Net<B> {
    let device = Default::default();
    seed_everything::<B>(seed, &device);
    Net {
        layers: vec![
            LinearConfig::new(4, hidden).init(&device),
            LinearConfig::new(hidden, 3).init(&device),
        ],
    }
}

fn forward(net: &Net<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    net.layers.iter().fold(x, |x, layer| {
        burn::tensor::activation::relu(layer.forward(x))
    })
}

fn bytes(param: &Param<Tensor<B, 2>>) -> Vec<u8> {
    param.val().into_data().bytes.to_vec()
}

fn state_bytes<R: HostRecord<B>>(state: R) -> Vec<u8> {
    rmp_serde::to_vec(&state.to_host()).unwrap()
}

#[test]
fn the_same_seed_initialises_the_same_weights() {
    let _rng = rng_lock();
    assert_eq!(
        bytes(&net(3, 8).layers[0].weight),
        bytes(&net(3, 8).layers[0].weight)
    );
    assert_ne!(
        bytes(&net(3, 8).layers[0].weight),
        bytes(&net(4, 8).layers[0].weight)
    );
}

#[test]
fn the_adamw_bundle_is_pytorchs_adamw_with_warmup_then_cosine() {
    let (lr, warmup, max) = (3e-4, 10u64, 100u64);
    let mut bundle = default_adamw_bundle(lr, 0.05, warmup, max).unwrap();
    for step in 0..max {
        // transformers' get_cosine_schedule_with_warmup, with the first step at t = 1.
        let expected = if step < warmup {
            lr * (step + 1) as f64 / warmup as f64
        } else {
            let progress = (step - warmup) as f64 / (max - warmup) as f64;
            lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        };
        let got = bundle.schedule.lr();
        assert!(
            (got - expected).abs() <= 1e-15,
            "step {step}: {got} vs {expected}"
        );
        bundle.schedule.step();
    }
    let optimizer = serde_json::to_value(&bundle.optimizer).unwrap();
    let f = |k: &str| optimizer[k].as_f64().unwrap() as f32;
    assert_eq!(
        (f("beta_1"), f("beta_2"), f("epsilon"), f("weight_decay")),
        (0.9, 0.999, 1e-8, 0.05)
    );
    for (args, needle) in [
        ((0.0, 0.0, 0, 10), "learning_rate"),
        ((1e-3, -1.0, 0, 10), "weight_decay"),
        ((1e-3, 0.0, 10, 10), "fewer than max_steps"),
    ] {
        let error = default_adamw_bundle(args.0, args.1, args.2, args.3)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains(needle), "{error}");
    }
}

#[test]
fn float_scalar_reads_a_loss_of_any_rank() {
    let device = Default::default();
    let loss = Tensor::<B, 3>::from_floats([[[1.5]]], &device);
    assert_eq!(float_scalar(loss).unwrap(), 1.5);
    let error = float_scalar(Tensor::<B, 2>::zeros([2, 2], &device))
        .unwrap_err()
        .to_string();
    assert!(error.contains("[2, 2]"), "{error}");
}

#[test]
fn the_trainable_part_loads_into_a_fresh_model_with_its_optimizer_state() {
    let _rng = rng_lock();
    let device = Default::default();
    let mut model = net(1, 8);
    let mut optim = AdamConfig::new().init::<B, Net<B>>();
    let x = Tensor::<B, 2>::random([5, 4], Distribution::Default, &device);
    for _ in 0..2 {
        let loss = forward(&model, x.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads::<B, _>(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let adapter = |path: &str| path.starts_with("layers.1.");
    let mut dict = StateDict::new();
    save_trainable_module(&mut dict, "adapter", &model, &optim, adapter).unwrap();

    // A model built afresh (other values, other parameter ids) and a fresh optimizer.
    let fresh = net(2, 8);
    let base_before = bytes(&fresh.layers[0].weight);
    let (loaded, loaded_optim) = load_trainable_module(
        &dict,
        "adapter",
        fresh,
        AdamConfig::new().init::<B, Net<B>>(),
        &device,
    )
    .unwrap();
    assert_eq!(
        bytes(&loaded.layers[1].weight),
        bytes(&model.layers[1].weight)
    );
    assert_eq!(
        bytes(&loaded.layers[0].weight),
        base_before,
        "the base stays"
    );
    assert!(loaded.layers[1].weight.val().is_require_grad());
    let mut theirs = optim.to_record();
    let mut ours = loaded_optim.to_record();
    assert_eq!(
        ours.len(),
        2,
        "state for the adapter's weight and bias only"
    );
    for (mine, saved) in [
        (loaded.layers[1].weight.id, model.layers[1].weight.id),
        (
            loaded.layers[1].bias.as_ref().unwrap().id,
            model.layers[1].bias.as_ref().unwrap().id,
        ),
    ] {
        assert_eq!(
            state_bytes(ours.remove(&mine).unwrap()),
            state_bytes(theirs.remove(&saved).unwrap())
        );
    }
    // The loaded pair trains on.
    let loss = forward(&loaded, x).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads::<B, _>(loss.backward(), &loaded);
    let mut loaded_optim = loaded_optim;
    let _ = loaded_optim.step(1e-2, loaded, grads);
}

#[test]
fn a_trainable_part_that_does_not_fit_is_refused_by_name() {
    let _rng = rng_lock();
    let device = Default::default();
    let model = net(1, 8);
    let optim = AdamConfig::new().init::<B, Net<B>>();
    let mut dict = StateDict::new();
    let error = save_trainable_module(&mut dict, "adapter", &model, &optim, |p| p == "nope")
        .unwrap_err()
        .to_string();
    assert!(error.contains("selects no parameter"), "{error}");
    save_trainable_module(&mut dict, "adapter", &model, &optim, |p| {
        p.starts_with("layers.1")
    })
    .unwrap();
    // Another hidden width: layers.1.weight is [16, 3] there.
    let error = load_trainable_module(
        &dict,
        "adapter",
        net(1, 16),
        AdamConfig::new().init::<B, Net<B>>(),
        &device,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("layers.1.weight") && error.contains("[8, 3]"),
        "{error}"
    );
}

#[test]
fn a_record_whose_fields_are_tensors_loads_in_its_own_order() {
    let _rng = rng_lock();
    // A bare `Linear` record is `{weight, bias}`: its tensors are checked against the module in
    // that order (a sorted scan put `bias` first and refused the record).
    let device = Default::default();
    seed_everything::<B>(5, &device);
    let layer: Linear<B> = LinearConfig::new(6, 3).init(&device);
    let mut dict = StateDict::new();
    // Stored before the layer's lazy parameters were ever read: what is stored must be what
    // the layer then holds (a clone of an uninitialised parameter draws values of its own).
    dict.put_module::<B, _>("model", &layer).unwrap();
    let expected = layer.weight.val().into_data().bytes.to_vec();
    let bytes = rmp_serde::to_vec_named(&dict).unwrap();
    let dict: StateDict = rmp_serde::from_slice(&bytes).unwrap();
    let fresh: Linear<B> = LinearConfig::new(6, 3).init(&device);
    let loaded = dict.load_module::<B, _>("model", fresh, &device).unwrap();
    assert_eq!(loaded.weight.val().into_data().bytes.to_vec(), expected);
}
