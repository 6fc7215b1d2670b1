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
