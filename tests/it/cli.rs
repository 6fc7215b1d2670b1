//! The `trainer` binary.

use std::process::Command;

fn trainer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.env_remove("TRAINER_DEVICE");
    command
}

#[test]
fn devices_lists_backends_and_what_auto_picks() {
    let output = trainer().args(["devices", "--json"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let backends: Vec<&str> = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(backends.contains(&"ndarray"));
    assert_eq!(backends.contains(&"flex"), cfg!(feature = "flex"));
    assert_eq!(backends.contains(&"wgpu"), cfg!(feature = "wgpu"));
    let auto = report["auto"]["backend"].as_str().unwrap();
    let adapters = report["wgpu_adapters"].as_array().unwrap().len();
    // auto takes wgpu exactly when it is compiled in and an adapter exists.
    assert_eq!(
        auto == "wgpu",
        cfg!(feature = "wgpu") && adapters > 0,
        "{report}"
    );
}

#[test]
fn the_environment_variable_overrides_auto() {
    let output = trainer()
        .args(["devices", "--json"])
        .env("TRAINER_DEVICE", "cpu")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // `cpu` is the best CPU backend compiled in.
    let cpu = if cfg!(feature = "flex") {
        "flex"
    } else {
        "ndarray"
    };
    assert_eq!(report["auto"]["backend"], cpu);
    assert!(
        report["auto"]["reason"]
            .as_str()
            .unwrap()
            .contains("TRAINER_DEVICE=cpu"),
        "{report}"
    );
}

#[test]
fn a_bad_device_variable_is_a_clear_error() {
    let output = trainer()
        .arg("devices")
        .env("TRAINER_DEVICE", "cuda")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`cuda`") && stderr.contains("TRAINER_DEVICE"),
        "{stderr}"
    );
}

#[test]
fn unknown_flags_are_refused() {
    let output = trainer().args(["devices", "--bogus"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bogus"));
}

fn fixture_cases() -> Vec<serde_json::Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/trainer-core/tests/it/fixtures/lr_schedules_torch.json"
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["cases"].as_array().unwrap().clone()
}

#[test]
fn schedule_prints_the_torch_curves() {
    for case in fixture_cases() {
        let config = serde_json::json!({"scheduler": case["scheduler"], "params": case["params"]})
            .to_string();
        let mut command = trainer();
        command.args([
            "schedule",
            "--config",
            &config,
            "--base-lr",
            &case["base_lr"].to_string(),
            "--steps",
            &case["steps"].to_string(),
        ]);
        if let Some(metrics) = case.get("metrics").and_then(|m| m.as_array()) {
            let joined: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
            command.args(["--metrics", &joined.join(",")]);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            case["scheduler"],
            String::from_utf8_lossy(&output.stderr)
        );
        let ours: Vec<f64> = serde_json::from_slice(&output.stdout).unwrap();
        let torch: Vec<f64> = case["lrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ours.len(), torch.len(), "{}", case["scheduler"]);
        for (k, (a, b)) in ours.iter().zip(&torch).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
                "{} lr {k}: {a} vs {b}",
                case["scheduler"]
            );
        }
    }
}

#[test]
fn schedule_draws_an_svg() {
    let path = std::env::temp_dir().join(format!("trainer-schedule-{}.svg", std::process::id()));
    let output = trainer()
        .args([
            "schedule",
            "--config",
            r#"{"scheduler": "CosineAnnealingLR", "params": {"T_max": 10}}"#,
        ])
        .args([
            "--base-lr",
            "0.1",
            "--steps",
            "20",
            "--svg",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}",
        &svg[..svg.len().min(200)]
    );
    assert!(
        svg.contains("<polyline") || svg.contains("<path"),
        "a drawn curve"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn schedule_errors_name_what_is_wrong() {
    let run = |args: &[&str]| {
        let output = trainer().arg("schedule").args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let err = run(&[
        "--config",
        r#"{"scheduler": "StepLR", "params": {"step_size": 0}}"#,
        "--base-lr",
        "0.1",
        "--steps",
        "3",
    ]);
    assert!(err.contains("StepLR") && err.contains("step_size"), "{err}");
    let err = run(&[
        "--config",
        r#"{"scheduler": "ReduceLROnPlateau", "params": {}}"#,
        "--base-lr",
        "0.1",
        "--steps",
        "3",
    ]);
    assert!(err.contains("--metrics"), "{err}");
    let err = run(&["--config", "{not json", "--base-lr", "0.1", "--steps", "3"]);
    assert!(err.contains("not valid"), "{err}");
    let err = run(&[
        "--config",
        "@/nonexistent/schedule.json",
        "--base-lr",
        "0.1",
        "--steps",
        "3",
    ]);
    assert!(err.contains("/nonexistent/schedule.json"), "{err}");
}

/// A real checkpoint of a short digits run, written through the library.
fn checkpoint_file(name: &str) -> std::path::PathBuf {
    use burn::data::dataset::InMemDataset;
    use trainer::prelude::*;
    type B = burn_autodiff::Autodiff<burn_ndarray::NdArray<f32>>;
    let dir =
        std::env::temp_dir().join(format!("trainer-cli-inspect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let items = crate::support::digits::load(crate::support::digits::bundled_path()).unwrap();
    let data = crate::support::digits::split(items, 0, 0.15, 0.15);
    let device = Default::default();
    let model = crate::support::mlp::MlpConfig::new(
        crate::support::digits::PIXELS,
        vec![16],
        crate::support::digits::CLASSES,
    )
    .init::<B>(1, &device);
    let config = TrainerConfig::new(1e-3)
        .with_epochs(Some(1))
        .with_batch_size(64)
        .with_validation(Some(Frequency::Epochs(1)));
    let mut t =
        SupervisedTrainer::builder(model, burn::optim::AdamConfig::new().init(), config, device)
            .train_data(
                InMemDataset::new(data.train),
                crate::support::digits::DigitsBatcher,
            )
            .valid_data(
                InMemDataset::new(data.valid),
                crate::support::digits::DigitsBatcher,
            )
            .build()
            .unwrap();
    t.fit().unwrap();
    let path = dir.join("run.ckpt");
    t.save_checkpoint(&path).unwrap();
    path
}

#[test]
fn inspect_prints_what_a_checkpoint_holds() {
    let path = checkpoint_file("ok");
    let output = trainer()
        .args(["inspect", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["format_version"], "1.2");
    assert_eq!(report["checksum_verified"], true);
    assert_eq!(report["epoch"], 1);
    assert_eq!(report["global_step"], 20); // 1257 items in batches of 64
                                           // 64-16-10: two weights and two biases; Adam holds two moments for each.
    assert_eq!(report["module_tensors"], 4);
    assert_eq!(
        report["module_tensor_bytes"],
        4 * (64 * 16 + 16 + 16 * 10 + 10)
    );
    assert_eq!(report["optimizer_tensors"], 8);
    assert!(
        report["metrics"]["valid"]["accuracy"].is_number(),
        "{report}"
    );
    let text = trainer().arg("inspect").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("verified") && text.contains("step 20") && text.contains("4 tensors"),
        "{text}"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn inspect_exits_1_on_a_damaged_checkpoint() {
    let path = checkpoint_file("damaged");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let output = trainer().arg("inspect").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("checksum mismatch") && stderr.contains("run.ckpt"),
        "{stderr}"
    );
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let output = trainer().arg("inspect").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("truncated"));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A short run of the example with a run folder.
fn example_run(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("examples")
        .join(format!("mlp{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.is_file(),
        "{} is missing: `cargo test` builds it, or run `cargo build --example mlp`",
        example.display()
    );
    let dir = std::env::temp_dir().join(format!("trainer-cli-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new(example)
        .args(["--epochs", "3", "--device", "cpu"])
        .arg("--run-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

#[test]
fn plot_draws_the_example_runs_curves_as_valid_svg() {
    let dir = example_run("ok");
    for (args, x) in [
        (vec![], "step"),
        (vec!["--x", "epoch", "--metrics", "loss,accuracy"], "epoch"),
    ] {
        let svg_path = dir.join(format!("curves-{x}.svg"));
        let output = trainer()
            .arg("plot")
            .arg(&dir)
            .arg("-o")
            .arg(&svg_path)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        let document = roxmltree::Document::parse(&svg).expect("the SVG parses as XML");
        assert_eq!(document.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = document.descendants().filter_map(|n| n.text()).collect();
        for title in ["loss", "accuracy", "learning rate", "train", "valid", x] {
            assert!(
                texts.iter().any(|t| t.trim() == title),
                "no `{title}` in the SVG texts: {texts:?}"
            );
        }
    }
    // The events file itself works too.
    let output = trainer()
        .arg("plot")
        .arg(dir.join("events.jsonl"))
        .arg("-o")
        .arg(dir.join("c.svg"))
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plot_names_what_is_wrong() {
    let dir = example_run("bad");
    let output = trainer()
        .arg("plot")
        .arg(&dir)
        .args(["-o", "/dev/null", "--metrics", "los"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no metric `los`") && stderr.contains("accuracy, elapsed_seconds"),
        "{stderr}"
    );
    let events = dir.join("events.jsonl");
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str("{\"event\": \"metrics\"}\n");
    std::fs::write(&events, text.as_bytes()).unwrap();
    let output = trainer()
        .arg("plot")
        .arg(&dir)
        .args(["-o", "/dev/null"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines = text.lines().count();
    assert!(
        stderr.contains(&format!("events.jsonl:{lines}:")) && stderr.contains("missing field"),
        "{stderr}"
    );
    let output = trainer()
        .arg("plot")
        .arg(dir.join("nothing"))
        .args(["-o", "/dev/null"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("reading"),
        "missing file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `command`, killing it after `seconds`: a hang is a failure, not a stuck test.
fn output_within(command: &mut Command, seconds: u64) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{command:?} did not end within {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn extreme_values_in_plots_and_previews_end_with_a_message() {
    let dir = std::env::temp_dir().join(format!("trainer-cli-extreme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let line = |step: u32, loss: &str| {
        format!(
            r#"{{"event":"metrics","time_unix_ms":0,"step":{step},"epoch":0,"split":"train","metrics":{{"loss":{loss}}}}}"#
        )
    };
    std::fs::write(
        dir.join("events.jsonl"),
        format!("{}\n{}\n", line(1, "1.7e308"), line(2, "0.5")),
    )
    .unwrap();
    let output = output_within(
        trainer()
            .arg("plot")
            .arg(&dir)
            .arg("-o")
            .arg(dir.join("x.svg")),
        60,
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("1.7e308") && err.contains("beyond"), "{err}");
    // Large but drawable values draw.
    std::fs::write(
        dir.join("events.jsonl"),
        format!("{}\n{}\n", line(1, "1e100"), line(2, "-1e100")),
    )
    .unwrap();
    let output = output_within(
        trainer()
            .arg("plot")
            .arg(&dir)
            .arg("-o")
            .arg(dir.join("x.svg")),
        60,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = output_within(
        trainer()
            .args([
                "schedule",
                "--config",
                r#"{"scheduler":"ExponentialLR","params":{"gamma":2.0}}"#,
            ])
            .args(["--base-lr", "1e300", "--steps", "10", "--svg"])
            .arg(dir.join("lr.svg")),
        60,
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot plot lr"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The field `name` of a MessagePack map.
fn field<'a>(value: &'a mut rmpv::Value, name: &str) -> &'a mut rmpv::Value {
    match value {
        rmpv::Value::Map(entries) => {
            &mut entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(name))
                .unwrap()
                .1
        }
        _ => panic!("not a map"),
    }
}

#[test]
fn inspect_survives_crafted_checkpoints() {
    let path = checkpoint_file("crafted");
    let bytes = std::fs::read(&path).unwrap();
    let mut payload =
        rmpv::decode::read_value(&mut &bytes[trainer_core::checkpoint::HEADER_LEN..]).unwrap();
    // Created "after the year 9999": printed as a number, not a panic.
    let mut far = payload.clone();
    *field(&mut far, "created_unix_ms") = rmpv::Value::from(u64::MAX);
    std::fs::write(&path, trainer_core::checkpoint::encode(&far).unwrap()).unwrap();
    let output = output_within(trainer().arg("inspect").arg(&path), 60);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("past the year 9999"), "{out}");
    // A tensor with fewer bytes than its shape: exit 1 naming it.
    let weight = match field(field(&mut payload, "module"), "layers") {
        rmpv::Value::Array(items) => field(field(&mut items[0], "weight"), "param"),
        _ => panic!("layers is not an array"),
    };
    *field(weight, "bytes") = rmpv::Value::Binary(vec![0; 12]);
    std::fs::write(&path, trainer_core::checkpoint::encode(&payload).unwrap()).unwrap();
    let output = output_within(trainer().arg("inspect").arg(&path), 60);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("module.layers.0.weight") && err.contains("the record holds 12"),
        "{err}"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn example_flags_out_of_range_are_errors_that_name_the_flag() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("examples")
        .join(format!("mlp{}", std::env::consts::EXE_SUFFIX));
    for (flag, value) in [
        ("--dropout", "2"),
        ("--hidden", "0"),
        ("--hidden", "64,100000000"),
        ("--lr", "nan"),
        ("--batch-size", "0"),
        ("--epochs", "0"),
    ] {
        let output = output_within(Command::new(&example).args([flag, value]), 60);
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}
