//! burn-flex, the fast CPU backend (feature `flex`), holds everything ndarray holds: it matches
//! ndarray within the cross-backend tolerance, the same seeded run twice in one process is
//! identical, a run resumed from a checkpoint ends bit-exactly where a straight run does, and a
//! snapshot keeps its values while training goes on. (The killed-and-resumed example runs on it
//! in `kill_resume.rs`.)
#![cfg(feature = "flex")]

use trainer::prelude::*;
use trainer_gpu::BackendKind;

use crate::backends::{
    assert_runs_agree, ResumeExactly, SameRunTwice, ShortRun, SnapshotAcrossThreads,
};

#[test]
fn flex_matches_ndarray_within_tolerance() {
    let (_, ndarray) = launch(DeviceRequest::NdArray, ShortRun).unwrap();
    let (selection, flex) = launch(DeviceRequest::Flex, ShortRun).unwrap();
    assert_eq!(selection.backend, BackendKind::Flex);
    assert_runs_agree(("ndarray", "flex"), &ndarray, &flex);
}

#[test]
fn the_same_seed_gives_the_same_run_on_flex() {
    let (_, (a, b)) = launch(DeviceRequest::Flex, SameRunTwice).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_resumed_run_ends_bit_exactly_where_a_straight_run_does_on_flex() {
    let (_, (straight, resumed)) = launch(DeviceRequest::Flex, ResumeExactly).unwrap();
    assert!(straight == resumed, "the resumed run's parameters differ");
}

#[test]
fn a_snapshot_encoded_on_another_thread_keeps_its_values_on_flex() {
    let (_, (at_snapshot, after, loaded)) =
        launch(DeviceRequest::Flex, SnapshotAcrossThreads).unwrap();
    assert!(at_snapshot != after, "the second epoch changed nothing");
    assert!(
        loaded == at_snapshot,
        "the checkpoint does not hold the snapshot's values"
    );
}

#[test]
fn cpu_chooses_flex_when_it_is_compiled_in() {
    let selection = trainer_gpu::select(DeviceRequest::Cpu).unwrap();
    assert_eq!(selection.backend, BackendKind::Flex, "{selection}");
}
