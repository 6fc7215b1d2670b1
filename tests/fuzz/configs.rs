//! Configs with extreme numbers: trainer configs, schedule configs (PyTorch's cases with their
//! parameters replaced, then restored at any step) and job specs. Each parses, validates and
//! builds, or says why not.

use proptest::prelude::*;
use serde_json::{json, Value};
use trainer_core::schedule::{step_schedule, ScheduleConfig};
use trainer_core::TrainerConfig;
use trainer_job::JobSpec;

/// A JSON value of the kinds that break arithmetic and allocation.
fn extreme() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(1 << 53),
            Just(1 << 63),
            any::<u64>()
        ]
        .prop_map(Value::from),
        prop_oneof![Just(-1i64), Just(i64::MIN), any::<i64>()].prop_map(Value::from),
        prop_oneof![
            Just(1.7e308),
            Just(-1.7e308),
            Just(5e-324),
            Just(0.0),
            Just(-0.0),
            Just(1e-300),
            any::<f64>()
        ]
        .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(""),
            Just("nan"),
            Just("Steps"),
            Just("exp_range"),
            Just("max"),
            Just("cos")
        ]
        .prop_map(Value::from),
        Just(Value::Null),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"Steps": u64::MAX})),
        Just(json!({"Epochs": 0})),
        proptest::collection::vec(
            prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100].prop_map(Value::from),
            0..8
        )
        .prop_map(Value::Array),
    ]
}

/// Replaces the value at one key of `value`'s objects, picked by `pick` among all of them
/// (nested ones too).
fn replace_some(value: &mut Value, pick: usize, with: Value) {
    fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = value {
            for (key, child) in map {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(pointer.clone());
                pointers(child, &pointer, out);
            }
        }
    }
    let mut all = Vec::new();
    pointers(value, "", &mut all);
    if let Some(slot) = all
        .get(pick % all.len().max(1))
        .and_then(|p| value.pointer_mut(p))
    {
        *slot = with;
    }
}

fn schedule_seeds() -> Vec<Value> {
    let text = include_str!("../../crates/trainer-core/tests/it/fixtures/lr_schedules_torch.json");
    let file: Value = serde_json::from_str(text).unwrap();
    let mut seeds: Vec<Value> = file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!({"scheduler": c["scheduler"], "params": c["params"]}))
        .collect();
    seeds.push(json!({"scheduler": "Warmup", "params": {"warmup_steps": 5, "then": {"scheduler": "StepLR", "params": {"step_size": 3}}}}));
    seeds
}

/// Builds a schedule from `config`, restores it at `step` and steps it a few times.
fn exercise_schedule(config: Value, base_lr: f64, step: u64) {
    let Ok(config) = serde_json::from_value::<ScheduleConfig>(config) else {
        return;
    };
    let Ok(mut schedule) = config.build(base_lr) else {
        return;
    };
    for _ in 0..3 {
        step_schedule(schedule.as_mut(), Some(0.5));
    }
    let mut state = schedule.state();
    if state.get("step").is_some() {
        state["step"] = json!(step);
    }
    if schedule.load_state(state).is_ok() {
        for _ in 0..3 {
            let _ = schedule.lr();
            step_schedule(schedule.as_mut(), Some(f64::NAN));
        }
    }
}

#[test]
fn schedule_and_trainer_configs_with_extreme_numbers_fail_cleanly() {
    let seeds = schedule_seeds();
    let base = serde_json::to_value(TrainerConfig::new(0.1).with_epochs(Some(3))).unwrap();
    let strategy = (
        any::<usize>(),
        proptest::collection::vec((any::<usize>(), extreme()), 1..4),
        any::<u64>(),
        extreme(),
    );
    crate::panics::install();
    crate::runner()
        .run(&strategy, |(which, changes, step, base_lr)| {
            let mut schedule = seeds[which % seeds.len()].clone();
            let mut config = base.clone();
            for (pick, with) in &changes {
                replace_some(&mut schedule, *pick, with.clone());
                replace_some(&mut config, *pick, with.clone());
            }
            let config_with_schedule = {
                let mut c = base.clone();
                c["lr_schedule"] = schedule.clone();
                c
            };
            let base_lr = base_lr.as_f64().unwrap_or(0.1);
            crate::guarded("configs", 256 << 20, move || {
                crate::panics::expect_none(|| {
                    exercise_schedule(schedule, base_lr, step);
                    for config in [config, config_with_schedule] {
                        if let Ok(config) = serde_json::from_value::<TrainerConfig>(config) {
                            let _ = config.validate();
                        }
                    }
                })
            })
            .map_err(|e| TestCaseError::fail(format!("{e}\nchanges: {changes:?}")))
        })
        .unwrap();
}

#[test]
fn job_specs_with_extreme_numbers_fail_cleanly() {
    let text = include_str!("../../examples/job/spec.json");
    let base: Value = serde_json::from_str(text).unwrap();
    crate::panics::install();
    crate::runner()
        .run(
            &proptest::collection::vec((any::<usize>(), extreme()), 1..5),
            |changes| {
                let mut spec = base.clone();
                for (pick, with) in &changes {
                    replace_some(&mut spec, *pick, with.clone());
                }
                let text = spec.to_string();
                crate::guarded("job spec", 64 << 20, move || {
                    crate::panics::expect_none(|| {
                        if let Ok(spec) = JobSpec::parse(&text, "fuzz.json") {
                            let _ = spec.schedule_config("fuzz.json");
                            let _ = trainer_job::mlp_classifier::MlpClassifier::from_spec(&spec);
                        }
                    })
                })
                .map_err(|e| TestCaseError::fail(format!("{e}\nchanges: {changes:?}")))
            },
        )
        .unwrap();
}
