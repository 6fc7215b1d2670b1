//! Schedules against PyTorch's own curves, resume, warmup and composition.

use trainer_core::schedule::{step_schedule, LrSchedule, ScheduleConfig};
use trainer_core::TrainerError;

struct Case {
    name: String,
    config: ScheduleConfig,
    base_lr: f64,
    lrs: Vec<f64>,
    metrics: Vec<f64>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("fixtures/lr_schedules_torch.json");
    let file: serde_json::Value = serde_json::from_str(text).unwrap();
    file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let config =
                serde_json::json!({"scheduler": case["scheduler"], "params": case["params"]});
            Case {
                name: case["scheduler"].as_str().unwrap().to_string(),
                config: serde_json::from_value(config)
                    .unwrap_or_else(|e| panic!("{}: {e}", case["scheduler"])),
                base_lr: case["base_lr"].as_f64().unwrap(),
                lrs: case["lrs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
                metrics: case
                    .get("metrics")
                    .and_then(|m| m.as_array())
                    .map(|m| m.iter().map(|v| v.as_f64().unwrap()).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Steps `schedule` from step `from` to `to`, feeding the case's metrics; returns the lrs after
/// each step.
fn advance(schedule: &mut dyn LrSchedule, case: &Case, from: usize, to: usize) -> Vec<f64> {
    (from..to)
        .map(|k| {
            step_schedule(schedule, case.metrics.get(k).copied());
            schedule.lr()
        })
        .collect()
}

fn curve(case: &Case) -> Vec<f64> {
    let mut schedule = case.config.build(case.base_lr).unwrap();
    let mut lrs = vec![schedule.lr()];
    lrs.extend(advance(schedule.as_mut(), case, 0, case.lrs.len() - 1));
    lrs
}

fn assert_close(name: &str, ours: &[f64], torch: &[f64]) {
    assert_eq!(ours.len(), torch.len(), "{name}");
    for (k, (a, b)) in ours.iter().zip(torch).enumerate() {
        let tolerance = 1e-12 * a.abs().max(b.abs());
        assert!(
            (a - b).abs() <= tolerance,
            "{name}: lr {k}: ours {a:e}, torch {b:e}"
        );
    }
}

#[test]
fn every_torch_case_matches_to_1e12_relative() {
    let cases = cases();
    assert_eq!(cases.len(), 13);
    for case in &cases {
        assert_close(&case.name, &curve(case), &case.lrs);
    }
}

#[test]
fn a_schedule_restored_after_any_step_continues_the_same() {
    for case in cases() {
        let steps = case.lrs.len() - 1;
        for k in 0..=steps {
            let mut first = case.config.build(case.base_lr).unwrap();
            advance(first.as_mut(), &case, 0, k);
            let state = first.state();
            // Through JSON text, as a checkpoint stores it.
            let state: serde_json::Value = serde_json::from_str(&state.to_string()).unwrap();
            let mut resumed = case.config.build(case.base_lr).unwrap();
            resumed.load_state(state).unwrap();
            assert_eq!(resumed.lr(), first.lr(), "{} at {k}", case.name);
            let rest = advance(resumed.as_mut(), &case, k, steps);
            assert_eq!(
                rest,
                curve(&case)[k + 1..].to_vec(),
                "{} resumed at {k}",
                case.name
            );
        }
    }
}

fn lrs(config: &str, base: f64, steps: usize) -> Vec<f64> {
    let config: ScheduleConfig = serde_json::from_str(config).unwrap();
    let mut schedule = config.build(base).unwrap();
    let mut lrs = vec![schedule.lr()];
    for _ in 0..steps {
        schedule.step();
        lrs.push(schedule.lr());
    }
    lrs
}

#[test]
fn linear_warmup_is_target_t_over_w_from_t_1() {
    // W = 4, target 0.2: optimizer steps 1..4 use 0.05, 0.1, 0.15, 0.2, then the target.
    let got = lrs(
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 4}}"#,
        0.2,
        6,
    );
    assert_close(
        "linear warmup",
        &got,
        &[0.05, 0.1, 0.15000000000000002, 0.2, 0.2, 0.2, 0.2],
    );
}

#[test]
fn exponential_warmup_is_target_t_over_w_squared() {
    let got = lrs(
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 4, "mode": "exponential"}}"#,
        0.2,
        5,
    );
    assert_close(
        "exponential warmup",
        &got,
        &[0.0125, 0.05, 0.1125, 0.2, 0.2, 0.2],
    );
}

#[test]
fn warmup_hands_over_to_cosine_at_its_step_0() {
    let got = lrs(
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 2,
            "then": {"scheduler": "CosineAnnealingLR", "params": {"T_max": 4, "eta_min": 0.0}}}}"#,
        1.0,
        7,
    );
    // Warmup 0.5, 1.0; then cosine from its step 0: (1 + cos(πk/4)) / 2 for k = 0..4, then up again.
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let expected = [
        0.5,
        1.0,
        1.0,
        (1.0 + s) / 2.0,
        0.5,
        (1.0 - s) / 2.0,
        0.0,
        (1.0 - s) / 2.0,
    ];
    for (k, (a, b)) in got.iter().zip(expected).enumerate() {
        assert!((a - b).abs() < 1e-15, "step {k}: {a} vs {b}");
    }
}

#[test]
fn warmup_hands_over_to_step_decay() {
    let got = lrs(
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 3,
            "then": {"scheduler": "StepLR", "params": {"step_size": 2, "gamma": 0.5}}}}"#,
        0.3,
        8,
    );
    assert_close(
        "warmup+step",
        &got,
        &[0.1, 0.2, 0.3, 0.3, 0.3, 0.15, 0.15, 0.075, 0.075],
    );
}

#[test]
fn warmup_state_resumes_inside_and_after_the_ramp() {
    let config: ScheduleConfig = serde_json::from_str(
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 3,
            "then": {"scheduler": "ExponentialLR", "params": {"gamma": 0.5}}}}"#,
    )
    .unwrap();
    let full = lrs(&serde_json::to_string(&config).unwrap(), 1.0, 8);
    for k in 0..8 {
        let mut a = config.build(1.0).unwrap();
        (0..k).for_each(|_| a.step());
        let mut b = config.build(1.0).unwrap();
        b.load_state(a.state()).unwrap();
        let mut rest = vec![b.lr()];
        for _ in k..8 {
            b.step();
            rest.push(b.lr());
        }
        assert_eq!(rest, full[k..].to_vec(), "resumed at {k}");
    }
}

#[test]
fn nested_schedules_take_both_spellings() {
    let pairs: ScheduleConfig = serde_json::from_str(
        r#"{"scheduler": "ChainedScheduler", "params": {"schedulers": [["ExponentialLR", {"gamma": 0.5}]]}}"#,
    )
    .unwrap();
    let maps: ScheduleConfig = serde_json::from_str(
        r#"{"scheduler": "ChainedScheduler", "params": {"schedulers": [{"scheduler": "ExponentialLR", "params": {"gamma": 0.5}}]}}"#,
    )
    .unwrap();
    assert_eq!(pairs, maps);
}

fn rejects(json: &str, scheduler: &str, param: &str, value: &str) {
    let config: ScheduleConfig =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    match config.build(0.1) {
        Err(TrainerError::InvalidSchedule {
            scheduler: s,
            param: p,
            value: v,
            ..
        }) => {
            assert_eq!(
                (s.as_str(), p.as_str(), v.as_str()),
                (scheduler, param, value),
                "{json}"
            );
        }
        Err(other) => panic!("{json}: unexpected error {other}"),
        Ok(_) => panic!("{json}: must be rejected"),
    }
}

#[test]
fn bad_params_are_named_with_their_values() {
    rejects(
        r#"{"scheduler": "CosineAnnealingLR", "params": {"T_max": 0}}"#,
        "CosineAnnealingLR",
        "T_max",
        "0",
    );
    rejects(
        r#"{"scheduler": "StepLR", "params": {"step_size": 2, "gamma": 0.0}}"#,
        "StepLR",
        "gamma",
        "0.0",
    );
    rejects(
        r#"{"scheduler": "StepLR", "params": {"step_size": 2, "gamma": -0.5}}"#,
        "StepLR",
        "gamma",
        "-0.5",
    );
    rejects(
        r#"{"scheduler": "StepLR", "params": {"step_size": 0}}"#,
        "StepLR",
        "step_size",
        "0",
    );
    rejects(
        r#"{"scheduler": "ExponentialLR", "params": {"gamma": 0.0}}"#,
        "ExponentialLR",
        "gamma",
        "0.0",
    );
    rejects(
        r#"{"scheduler": "MultiStepLR", "params": {"milestones": [5, 3]}}"#,
        "MultiStepLR",
        "milestones",
        "[5, 3]",
    );
    rejects(
        r#"{"scheduler": "ReduceLROnPlateau", "params": {"factor": 1.0}}"#,
        "ReduceLROnPlateau",
        "factor",
        "1.0",
    );
    rejects(
        r#"{"scheduler": "ReduceLROnPlateau", "params": {"factor": 1.5}}"#,
        "ReduceLROnPlateau",
        "factor",
        "1.5",
    );
    rejects(
        r#"{"scheduler": "LinearLR", "params": {"start_factor": 0.0}}"#,
        "LinearLR",
        "start_factor",
        "0.0",
    );
    rejects(
        r#"{"scheduler": "PolynomialLR", "params": {"total_iters": 0}}"#,
        "PolynomialLR",
        "total_iters",
        "0",
    );
    rejects(
        r#"{"scheduler": "CosineAnnealingWarmRestarts", "params": {"T_0": 0}}"#,
        "CosineAnnealingWarmRestarts",
        "T_0",
        "0",
    );
    rejects(
        r#"{"scheduler": "OneCycleLR", "params": {"max_lr": 0.1, "total_steps": 10, "pct_start": 1.5}}"#,
        "OneCycleLR",
        "pct_start",
        "1.5",
    );
    rejects(
        r#"{"scheduler": "OneCycleLR", "params": {"max_lr": 0.1, "total_steps": 1}}"#,
        "OneCycleLR",
        "total_steps",
        "1",
    );
    rejects(
        r#"{"scheduler": "Warmup", "params": {"warmup_steps": 0}}"#,
        "Warmup",
        "warmup_steps",
        "0",
    );
    rejects(
        r#"{"scheduler": "SequentialLR", "params": {"schedulers": [["ConstantLR", {}], ["ExponentialLR", {"gamma": 0.9}]], "milestones": [3, 6]}}"#,
        "SequentialLR",
        "milestones",
        "[3, 6]",
    );
    rejects(
        r#"{"scheduler": "ChainedScheduler", "params": {"schedulers": []}}"#,
        "ChainedScheduler",
        "schedulers",
        "0",
    );
    // A nested schedule's own bad param is named too.
    rejects(
        r#"{"scheduler": "SequentialLR", "params": {"schedulers": [["ConstantLR", {}], ["StepLR", {"step_size": 0}]], "milestones": [3]}}"#,
        "StepLR",
        "step_size",
        "0",
    );
}

#[test]
fn unknown_schedulers_and_params_are_serde_errors() {
    let err = serde_json::from_str::<ScheduleConfig>(r#"{"scheduler": "NoamLR", "params": {}}"#)
        .unwrap_err();
    assert!(err.to_string().contains("NoamLR"), "{err}");
    let err = serde_json::from_str::<ScheduleConfig>(
        r#"{"scheduler": "ReduceLROnPlateau", "params": {"patiense": 3}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("patiense"), "{err}");
}

#[test]
fn plateau_counts_nan_as_no_improvement() {
    let config: ScheduleConfig = serde_json::from_str(
        r#"{"scheduler": "ReduceLROnPlateau", "params": {"patience": 1, "factor": 0.5}}"#,
    )
    .unwrap();
    let mut s = config.build(1.0).unwrap();
    for metric in [1.0, f64::NAN, f64::NAN] {
        s.step_with_metric(metric);
    }
    // 1.0 is the best; two NaNs are two bad steps > patience 1: halved.
    assert_eq!(s.lr(), 0.5);
}

/// A schedule restored at `step` (as a checkpoint from anyone may say), then stepped once.
fn restored(config: &str, base: f64, step: u64) -> (f64, f64) {
    let config: ScheduleConfig = serde_json::from_str(config).unwrap();
    let mut schedule = config.build(base).unwrap();
    let mut state = schedule.state();
    state["step"] = serde_json::json!(step);
    schedule.load_state(state).unwrap();
    let before = schedule.lr();
    schedule.step();
    (before, schedule.lr())
}

#[test]
fn huge_parameters_and_restored_counters_neither_overflow_nor_loop() {
    let huge = u64::MAX - 1;
    let cases = [
        format!(r#"{{"scheduler": "CosineAnnealingLR", "params": {{"T_max": {huge}}}}}"#),
        r#"{"scheduler": "CosineAnnealingWarmRestarts", "params": {"T_0": 1, "T_mult": 1}}"#
            .to_string(),
        r#"{"scheduler": "CosineAnnealingWarmRestarts", "params": {"T_0": 3, "T_mult": 2}}"#
            .to_string(),
        format!(
            r#"{{"scheduler": "CyclicLR", "params": {{"base_lr": 0.01, "max_lr": 0.1, "step_size_up": {huge}, "step_size_down": {huge}}}}}"#
        ),
        r#"{"scheduler": "StepLR", "params": {"step_size": 1, "gamma": 0.5}}"#.to_string(),
        r#"{"scheduler": "ExponentialLR", "params": {"gamma": 0.9}}"#.to_string(),
        format!(r#"{{"scheduler": "LinearLR", "params": {{"total_iters": {huge}}}}}"#),
        format!(
            r#"{{"scheduler": "OneCycleLR", "params": {{"max_lr": 0.1, "total_steps": {huge}}}}}"#
        ),
    ];
    for config in &cases {
        for step in [0, 1 << 40, u64::MAX / 2 + 7, u64::MAX] {
            let (before, after) = restored(config, 0.1, step);
            assert!(
                before.is_finite() && after.is_finite() && before >= 0.0,
                "{config} at {step}: {before}, {after}"
            );
        }
    }
    // A decay past 2^31 steps keeps decaying (an `i32` exponent would wrap and grow it).
    let (lr, _) = restored(
        r#"{"scheduler": "StepLR", "params": {"step_size": 1, "gamma": 0.5}}"#,
        0.1,
        1 << 33,
    );
    assert_eq!(lr, 0.0);
    let (lr, _) = restored(
        r#"{"scheduler": "ExponentialLR", "params": {"gamma": 1.0000001}}"#,
        0.1,
        1 << 33,
    );
    assert!(lr > 0.1, "{lr}");
}

#[test]
fn enum_params_are_named_by_serde_with_the_accepted_values() {
    for (json, expected) in [
        (
            r#"{"scheduler": "OneCycleLR", "params": {"max_lr": 0.1, "total_steps": 10, "anneal_strategy": "cosine"}}"#,
            "unknown variant `cosine`, expected `cos` or `linear`",
        ),
        (
            r#"{"scheduler": "CyclicLR", "params": {"base_lr": 0.01, "max_lr": 0.1, "mode": "square"}}"#,
            "unknown variant `square`, expected one of `triangular`, `triangular2`, `exp_range`",
        ),
    ] {
        let error = serde_json::from_str::<ScheduleConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{json}: {error}");
    }
    // Both spellings of a good value still parse, and every name reads back from serde.
    let config: ScheduleConfig = serde_json::from_str(
        r#"{"scheduler": "CyclicLR", "params": {"base_lr": 0.01, "max_lr": 0.1, "mode": "exp_range", "gamma": 0.99}}"#,
    )
    .unwrap();
    assert_eq!(config.name(), "CyclicLR");
    assert_eq!(ScheduleConfig::default().name(), "Constant");
}
