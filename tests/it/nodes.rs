//! Data parallel over several machines, on one: `trainer orchestrator` and two `mlp` node
//! processes of two replicas each, meeting over WebSocket on 127.0.0.1. Both nodes end with the
//! same weights, a rerun repeats them to the bit, and a node whose peers are missing, stop or
//! start elsewhere fails with a clear error in bounded time.
#![cfg(unix)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kill_resume::example_binary;

/// A port nobody listens on now (the OS's choice; released for the process that takes it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `trainer orchestrator`, stopped when dropped.
pub(crate) struct Orchestrator {
    child: Child,
    port: u16,
}

impl Orchestrator {
    /// Starts one and waits until it accepts connections.
    pub(crate) fn start() -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(["orchestrator", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let orchestrator = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the orchestrator did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        orchestrator
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node `rank` of 2, two replicas, meeting at `orchestrator`.
fn node(orchestrator: &str, rank: usize, extra: &[&str]) -> Command {
    node_of(orchestrator, rank, 2, extra)
}

/// Node `rank` of 2, `replicas` replicas, meeting at `orchestrator`.
pub(crate) fn node_of(orchestrator: &str, rank: usize, replicas: usize, extra: &[&str]) -> Command {
    let mut command = Command::new(example_binary());
    command
        .args(["--device", "ndarray", "--replicas", &replicas.to_string()])
        .args(["--nodes", "2"])
        .args([
            "--node-rank",
            &rank.to_string(),
            "--orchestrator",
            orchestrator,
        ])
        .args(["--node-address", &format!("ws://127.0.0.1:{}", free_port())])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child`, killing it (and failing the test) after `limit`. Its pipes are read
/// meanwhile, so that a full pipe never stalls it.
pub(crate) fn wait(mut child: Child, limit: Duration) -> Output {
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap();
            panic!(
                "a node still ran after {limit:?}:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs both nodes, two replicas each, to the end and returns their final JSON lines.
fn run_two_nodes(extra: &[&str]) -> [Value; 2] {
    run_two_nodes_of(2, extra)
}

/// Runs both nodes, `replicas` replicas each, to the end and returns their final JSON lines.
fn run_two_nodes_of(replicas: usize, extra: &[&str]) -> [Value; 2] {
    let orchestrator = Orchestrator::start();
    let children = [0, 1].map(|rank| {
        node_of(&orchestrator.url(), rank, replicas, extra)
            .spawn()
            .unwrap()
    });
    children.map(|child| finished_node(child, Duration::from_secs(300)))
}

/// Waits for a node that must succeed (at most `limit`): its final JSON line.
pub(crate) fn finished_node(child: Child, limit: Duration) -> Value {
    let output = wait(child, limit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a node failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("a final JSON line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// One process (no nodes) of two replicas, run to the end: its final JSON line.
fn one_process_of_two_replicas(args: &[&str]) -> Value {
    let output = Command::new(example_binary())
        .args(["--device", "ndarray", "--replicas", "2"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn two_nodes_of_two_replicas_end_with_the_same_weights_and_a_rerun_repeats_them() {
    let args = ["--epochs", "3", "--seed", "9", "--peer-timeout", "120"];
    let first = run_two_nodes(&args);
    for result in &first {
        assert_eq!(result["nodes"], 2, "{result}");
        assert_eq!(result["replicas"], 2, "{result}");
        assert!(result["gradient_sync_seconds"].as_f64().unwrap() > 0.0);
    }
    // Each node trains on its own quarter and half of the batches: only averaging with the other
    // node's gradients at every step gives both the same weights.
    assert_eq!(first[0]["steps"], first[1]["steps"]);
    assert_eq!(first[0]["weights_sha256"], first[1]["weights_sha256"]);
    // Two peers per level: every sum is of two, which is order-free, so a rerun is bit-identical.
    let second = run_two_nodes(&args);
    assert_eq!(second[0]["weights_sha256"], first[0]["weights_sha256"]);
    assert_eq!(second[1]["weights_sha256"], first[0]["weights_sha256"]);
    assert_eq!(second[0]["test_loss"], first[0]["test_loss"]);
    // One node alone with the same arguments is another run (half of every epoch's batches).
    let alone = one_process_of_two_replicas(&args);
    assert_eq!(
        alone["steps"].as_u64().unwrap(),
        2 * first[0]["steps"].as_u64().unwrap()
    );
    assert_ne!(alone["weights_sha256"], first[0]["weights_sha256"]);
}

#[test]
fn two_nodes_of_one_replica_train_exactly_as_one_node_of_two() {
    // Global ranks deal the batches and seed the random ops, and a sum of two is order-free:
    // where the replicas run does not change a bit of the result. Early stopping keeps the best
    // weights at validations and puts them back at the end: its requests are agreed between the
    // nodes at the same points.
    let args = [
        "--epochs",
        "3",
        "--patience",
        "1",
        "--seed",
        "3",
        "--peer-timeout",
        "120",
    ];
    let nodes = run_two_nodes_of(1, &args);
    let one = one_process_of_two_replicas(&args);
    for node in &nodes {
        assert_eq!(node["replicas"], 1, "{node}");
        assert_eq!(node["steps"], one["steps"], "{node}");
        assert_eq!(node["weights_sha256"], one["weights_sha256"], "{node}");
        assert_eq!(node["test_loss"], one["test_loss"], "{node}");
    }
}

#[test]
fn two_nodes_resumed_from_their_checkpoints_end_as_an_unbroken_run() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = |rank: usize| dir.path().join(format!("node{rank}"));
    let common = ["--seed", "4", "--peer-timeout", "120"];
    let unbroken = run_two_nodes(&[&common[..], &["--epochs", "3"]].concat());
    // Two epochs with a checkpoint at the end, then on to three from it: the resumed nodes agree
    // on where they stand (the start check) and end with the unbroken run's weights.
    let resumed = |epochs: &str, resume: bool| -> [Value; 2] {
        let orchestrator = Orchestrator::start();
        let children = [0, 1].map(|rank| {
            let dir = run_dir(rank).to_string_lossy().into_owned();
            let mut args = vec!["--epochs", epochs, "--run-dir", &dir];
            if resume {
                args.push("--resume");
            }
            args.extend(common);
            node(&orchestrator.url(), rank, &args).spawn().unwrap()
        });
        children.map(|child| {
            let output = wait(child, Duration::from_secs(300));
            assert!(output.status.success(), "{}", stderr(&output));
            let stdout = String::from_utf8_lossy(&output.stdout);
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
        })
    };
    resumed("2", false);
    assert!(run_dir(0).join("checkpoints").is_dir() && run_dir(1).join("checkpoints").is_dir());
    let ends = resumed("3", true);
    for end in &ends {
        assert_eq!(
            end["weights_sha256"], unbroken[0]["weights_sha256"],
            "{end}"
        );
    }
    // One machine cannot continue what two began: its batches would be dealt otherwise.
    let alone = Command::new(example_binary())
        .args([
            "--device",
            "ndarray",
            "--replicas",
            "2",
            "--epochs",
            "4",
            "--resume",
        ])
        .arg("--run-dir")
        .arg(run_dir(0))
        .args(common)
        .output()
        .unwrap();
    assert!(!alone.status.success());
    assert!(
        stderr(&alone).contains("run over 2 node(s) and this one has 1"),
        "{}",
        stderr(&alone)
    );
}

#[test]
fn a_node_whose_peers_never_come_fails_after_its_timeout() {
    // No orchestrator at all, then an orchestrator but no second node.
    let nobody = format!("ws://127.0.0.1:{}", free_port());
    let orchestrator = Orchestrator::start();
    for url in [nobody, orchestrator.url()] {
        let started = Instant::now();
        let child = node(&url, 0, &["--epochs", "2", "--peer-timeout", "2"])
            .spawn()
            .unwrap();
        let output = wait(child, Duration::from_secs(60));
        assert!(!output.status.success());
        let error = stderr(&output);
        assert!(
            error.contains("registering with the orchestrator") && error.contains("within 2s"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{started:?}");
    }
}

/// Two nodes training for long; returns (node 0, node 1) once node 1 has trained an epoch in
/// step with node 0 (read from its progress lines), with `orchestrator` kept alive by the caller.
fn pair_past_its_first_epoch(orchestrator: &Orchestrator, timeout: &str) -> (Child, Child) {
    let args = ["--epochs", "1000", "--peer-timeout", timeout];
    let survivor = node(&orchestrator.url(), 0, &args).spawn().unwrap();
    let mut victim = node(&orchestrator.url(), 1, &args).spawn().unwrap();
    let mut seen = String::new();
    let mut reader = std::io::BufReader::new(victim.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    // The epoch's summary line (its progress lines name the epoch too, from its first step).
    while !seen
        .lines()
        .any(|line| line.contains("epoch 1/1000") && line.contains("train_loss"))
    {
        assert!(Instant::now() < deadline, "no epoch ended: {seen}");
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            panic!("the node ended before its first epoch: {seen}");
        }
        seen.push_str(&line);
    }
    // Its later progress lines are not read; a pipe holds far more than this test lets it write.
    std::mem::forget(reader);
    (survivor, victim)
}

#[test]
fn a_node_that_dies_fails_the_other_within_its_timeout() {
    let orchestrator = Orchestrator::start();
    let (survivor, mut victim) = pair_past_its_first_epoch(&orchestrator, "20");
    victim.kill().unwrap();
    let killed = victim.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed),
        Some(9)
    );
    let killed_at = Instant::now();
    let output = wait(survivor, Duration::from_secs(120));
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("all-reduce failed") || error.contains("another node"),
        "{error}"
    );
    assert!(killed_at.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_node_that_hangs_fails_the_other_after_the_timeout() {
    // SIGSTOP: the stopped node keeps its connections open and answers nothing, so the other
    // waits inside burn-collective until its timeout gives the all-reduce up.
    let orchestrator = Orchestrator::start();
    let (survivor, mut victim) = pair_past_its_first_epoch(&orchestrator, "5");
    let stopped = Command::new("kill")
        .args(["-STOP", &victim.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let stopped_at = Instant::now();
    let output = wait(survivor, Duration::from_secs(120));
    let waited = stopped_at.elapsed();
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(error.contains("did not complete within 5s"), "{error}");
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(60),
        "{waited:?}"
    );
}

#[test]
fn nodes_that_start_from_different_weights_are_refused() {
    let orchestrator = Orchestrator::start();
    let children = [0, 1].map(|rank| {
        let seed = (40 + rank).to_string();
        node(
            &orchestrator.url(),
            rank,
            &["--epochs", "2", "--seed", &seed, "--peer-timeout", "20"],
        )
        .spawn()
        .unwrap()
    });
    let outputs = children.map(|child| wait(child, Duration::from_secs(120)));
    assert!(outputs.iter().all(|output| !output.status.success()));
    assert!(
        outputs
            .iter()
            .any(|output| stderr(output).contains("do not start from the same point")),
        "{}\n{}",
        stderr(&outputs[0]),
        stderr(&outputs[1])
    );
}

#[test]
fn node_flags_that_cannot_work_are_refused_before_training() {
    for (args, needle) in [
        (
            vec!["--nodes", "2", "--orchestrator", "http://127.0.0.1:1"],
            "not a WebSocket URL",
        ),
        (vec!["--nodes", "2"], "needs --orchestrator"),
        (
            vec![
                "--nodes",
                "2",
                "--node-rank",
                "2",
                "--orchestrator",
                "ws://127.0.0.1:1",
            ],
            "does not fit 2 nodes",
        ),
    ] {
        let output = Command::new(example_binary())
            .args(["--device", "ndarray", "--epochs", "1"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let error = stderr(&output);
        assert!(error.contains(needle), "{args:?}: {error}");
    }
}
