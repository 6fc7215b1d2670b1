//! Retention policies and the monitored-metric comparisons, on given index entries.

use std::sync::Arc;

use trainer_core::checkpoint::{IndexEntry, Retention, RetentionPolicy, SaveReason};
use trainer_core::metric::{Monitor, Split};

fn entry(step: usize, monitored: Option<f64>) -> IndexEntry {
    IndexEntry {
        file: format!("epoch-0000-step-{step:06}.ckpt"),
        epoch: 0,
        step,
        batch_in_epoch: step,
        reasons: vec![SaveReason::EveryNSteps],
        monitored,
        created_unix_ms: 0,
    }
}

fn kept(retention: &Retention, entries: &[IndexEntry], monitor: Option<&Monitor>) -> Vec<usize> {
    retention
        .keep(entries, monitor)
        .iter()
        .zip(entries)
        .filter(|(k, _)| **k)
        .map(|(_, e)| e.step)
        .collect()
}

#[test]
fn keep_all_and_last_n() {
    let entries: Vec<_> = (1..=5).map(|s| entry(s, None)).collect();
    assert_eq!(kept(&Retention::All, &entries, None), vec![1, 2, 3, 4, 5]);
    assert_eq!(kept(&Retention::LastN(2), &entries, None), vec![4, 5]);
    assert_eq!(
        kept(&Retention::LastN(9), &entries, None),
        vec![1, 2, 3, 4, 5]
    );
    // Zero still keeps the newest: a resume needs it.
    assert_eq!(kept(&Retention::LastN(0), &entries, None), vec![5]);
}

#[test]
fn best_k_ranks_by_the_metric_ties_to_the_earlier_step_and_keeps_the_newest() {
    let loss = Monitor::min(Split::Valid, "loss");
    let entries = vec![
        entry(1, Some(0.5)),
        entry(2, Some(0.3)),
        entry(3, Some(0.3)),
        entry(4, None),
        entry(5, Some(f64::NAN)),
        entry(6, Some(0.4)),
        entry(7, Some(0.9)),
    ];
    assert_eq!(
        kept(&Retention::BestK(2), &entries, Some(&loss)),
        vec![2, 3, 7]
    );
    assert_eq!(
        kept(&Retention::BestK(1), &entries, Some(&loss)),
        vec![2, 7]
    );
    assert_eq!(
        kept(&Retention::BestK(3), &entries, Some(&loss)),
        vec![2, 3, 6, 7]
    );
    let accuracy = Monitor::max(Split::Valid, "accuracy");
    assert_eq!(
        kept(&Retention::BestK(2), &entries, Some(&accuracy)),
        vec![1, 7]
    );
}

#[test]
fn best_and_latest_keeps_only_the_newest_step_file() {
    let entries: Vec<_> = (1..=4).map(|s| entry(s, Some(s as f64))).collect();
    assert_eq!(
        kept(
            &Retention::BestAndLatest,
            &entries,
            Some(&Monitor::min(Split::Valid, "loss"))
        ),
        vec![4]
    );
}

#[test]
fn a_user_policy_decides_and_the_newest_survives_it() {
    struct EvenSteps;
    impl RetentionPolicy for EvenSteps {
        fn describe(&self) -> String {
            "even steps".into()
        }
        fn keep(&self, entries: &[IndexEntry], _: Option<&Monitor>) -> Vec<bool> {
            entries.iter().map(|e| e.step % 2 == 0).collect()
        }
    }
    let entries: Vec<_> = (1..=5).map(|s| entry(s, None)).collect();
    let policy = Retention::Custom(Arc::new(EvenSteps));
    assert_eq!(kept(&policy, &entries, None), vec![2, 4, 5]);
    assert_eq!(policy.describe(), "even steps");
}

#[test]
fn improvement_is_strict_and_nan_never_improves() {
    let loss = Monitor::min(Split::Valid, "loss");
    assert!(loss.improves(1.0, None));
    assert!(loss.improves(0.9, Some(1.0)));
    assert!(
        !loss.improves(1.0, Some(1.0)),
        "a tie keeps the earlier best"
    );
    assert!(!loss.improves(f64::NAN, Some(1.0)));
    assert!(!loss.improves(f64::NAN, None));
    assert!(loss.improves(5.0, Some(f64::NAN)));
    let accuracy = Monitor::max(Split::Valid, "accuracy");
    assert!(accuracy.improves(0.8, Some(0.7)));
    assert!(!accuracy.improves(0.7, Some(0.7)));
    assert_eq!(accuracy.name(), "valid/accuracy");
}
