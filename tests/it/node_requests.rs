//! Over several machines the nodes agree on the callbacks' requests: a stop that one node's
//! callbacks make (here its clock's) stops every node at the same step, cleanly, instead of
//! leaving the others waiting for it until their timeout.
#![cfg(unix)]

use std::time::{Duration, Instant};

use crate::nodes::{finished_node, node_of, Orchestrator};

#[test]
fn a_stop_on_one_node_stops_every_node_at_the_same_step() {
    let orchestrator = Orchestrator::start();
    let common = ["--epochs", "100000", "--seed", "6", "--peer-timeout", "60"];
    let started = Instant::now();
    let children = [0, 1].map(|rank| {
        let mut command = node_of(&orchestrator.url(), rank, 2, &common);
        if rank == 0 {
            // Only node 0 has a time limit: node 1's callbacks never ask to stop.
            command.args(["--max-time", "3"]);
        }
        command.spawn().unwrap()
    });
    // Both waited for at once: each one's pipes are read while the other runs.
    let results = children
        .map(|child| std::thread::spawn(move || finished_node(child, Duration::from_secs(120))))
        .map(|waiting| waiting.join().unwrap());
    // Well before the peers' 60 s timeout: node 1 stopped because node 0 did, not because it
    // stopped hearing from it.
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
    let reasons = [0, 1].map(|n| results[n]["stop_reason"].as_str().unwrap().to_string());
    assert!(reasons[0].contains("time limit"), "{}", reasons[0]);
    assert!(reasons[1].contains("another node"), "{}", reasons[1]);
    let steps = results[0]["steps"].as_u64().unwrap();
    assert!(steps > 0, "{}", results[0]);
    assert_eq!(results[1]["steps"], results[0]["steps"]);
    assert_eq!(results[1]["weights_sha256"], results[0]["weights_sha256"]);
}
