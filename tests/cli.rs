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
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let backends: Vec<&str> = report["backends"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
    assert!(backends.contains(&"ndarray"));
    assert_eq!(backends.contains(&"wgpu"), cfg!(feature = "wgpu"));
    let auto = report["auto"]["backend"].as_str().unwrap();
    let adapters = report["wgpu_adapters"].as_array().unwrap().len();
    // auto takes wgpu exactly when it is compiled in and an adapter exists.
    assert_eq!(auto == "wgpu", cfg!(feature = "wgpu") && adapters > 0, "{report}");
}

#[test]
fn the_environment_variable_overrides_auto() {
    let output = trainer().args(["devices", "--json"]).env("TRAINER_DEVICE", "cpu").output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["auto"]["backend"], "ndarray");
    assert!(report["auto"]["reason"].as_str().unwrap().contains("TRAINER_DEVICE=cpu"), "{report}");
}

#[test]
fn a_bad_device_variable_is_a_clear_error() {
    let output = trainer().arg("devices").env("TRAINER_DEVICE", "cuda").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`cuda`") && stderr.contains("TRAINER_DEVICE"), "{stderr}");
}

#[test]
fn unknown_flags_are_refused() {
    let output = trainer().args(["devices", "--bogus"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bogus"));
}
