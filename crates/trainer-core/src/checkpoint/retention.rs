use std::sync::Arc;

use super::IndexEntry;
use crate::metric::Monitor;

/// A user's rule for which step checkpoints a folder keeps.
pub trait RetentionPolicy: Send + Sync {
    /// The rule in words, for the index file.
    fn describe(&self) -> String;

    /// For each entry (oldest first), whether to keep it. The newest entry is kept whatever
    /// this says: a resume needs it.
    fn keep(&self, entries: &[IndexEntry], monitor: Option<&Monitor>) -> Vec<bool>;
}

/// Which step checkpoints (`epoch-EEEE-step-SSSSSS.ckpt`) a folder keeps; the one `latest`
/// names is always kept, and `best-<metric>.ckpt` is kept apart whenever a metric is monitored.
#[derive(Clone, Default)]
pub enum Retention {
    /// Keep every checkpoint.
    #[default]
    All,
    /// Keep the newest N.
    LastN(usize),
    /// Keep the K with the best monitored value (ties: the earlier step), plus the newest.
    BestK(usize),
    /// Keep only the newest step checkpoint, beside `best-<metric>.ckpt`.
    BestAndLatest,
    /// A user's rule.
    Custom(Arc<dyn RetentionPolicy>),
}

impl Retention {
    /// The policy in words.
    pub fn describe(&self) -> String {
        match self {
            Retention::All => "keep all".into(),
            Retention::LastN(n) => format!("keep the last {n}"),
            Retention::BestK(k) => {
                format!("keep the best {k} by the monitored metric, and the latest")
            }
            Retention::BestAndLatest => "keep the best and the latest".into(),
            Retention::Custom(policy) => policy.describe(),
        }
    }

    /// Whether the policy ranks by a monitored metric.
    pub fn needs_monitor(&self) -> bool {
        matches!(self, Retention::BestK(_) | Retention::BestAndLatest)
    }

    /// For each entry (oldest first), whether to keep it; the newest is always kept.
    pub fn keep(&self, entries: &[IndexEntry], monitor: Option<&Monitor>) -> Vec<bool> {
        let n = entries.len();
        let mut keep = match self {
            Retention::All => vec![true; n],
            Retention::LastN(count) => (0..n).map(|i| i + count >= n).collect(),
            Retention::BestAndLatest => vec![false; n],
            Retention::BestK(k) => {
                let mut keep = vec![false; n];
                if let Some(monitor) = monitor {
                    let mut ranked: Vec<(usize, f64)> = entries
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| Some((i, e.monitored?)))
                        .collect();
                    ranked.sort_by(|(ia, a), (ib, b)| {
                        monitor
                            .compare(*a, *b)
                            .then(entries[*ia].step.cmp(&entries[*ib].step))
                    });
                    for (i, _) in ranked.into_iter().take(*k) {
                        keep[i] = true;
                    }
                }
                keep
            }
            Retention::Custom(policy) => {
                let mut keep = policy.keep(entries, monitor);
                keep.resize(n, true);
                keep
            }
        };
        if let Some(last) = keep.last_mut() {
            *last = true;
        }
        keep
    }
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    //! Retention policies and the monitored-metric comparisons, on given index entries.

    use std::sync::Arc;

    use super::{Retention, RetentionPolicy};
    use crate::checkpoint::{IndexEntry, SaveReason};
    use crate::metric::{Monitor, Split};

    fn entry(step: usize, monitored: Option<f64>) -> IndexEntry {
        IndexEntry {
            file: format!("epoch-0000-step-{step:06}.ckpt"),
            epoch: 0,
            step,
            batch_in_epoch: step,
            reasons: vec![SaveReason::EveryNSteps],
            monitored,
            created_unix_ms: 0,
            files: Vec::new(),
        }
    }

    fn kept(
        retention: &Retention,
        entries: &[IndexEntry],
        monitor: Option<&Monitor>,
    ) -> Vec<usize> {
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
}
