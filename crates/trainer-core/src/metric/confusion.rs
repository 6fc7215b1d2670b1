use serde::{Deserialize, Serialize};

use super::names::{F1_MACRO, PRECISION_MACRO, RECALL_MACRO};
use crate::state::MetricValues;

/// Counts of (true class, predicted class) pairs: `counts[t][p]`.
///
/// Macro averages follow scikit-learn's `average="macro"` with `zero_division=0`: the mean over
/// the classes that occur as a target or a prediction; a class never predicted has precision 0,
/// a class that never occurs has recall 0, and F1 is 0 where precision + recall is 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// The matrix of a window's summed confusion counts (`classes²` values, row by row); `None`
    /// when they do not make a square.
    pub fn from_sums(sums: &[f64]) -> Option<Self> {
        let classes = (sums.len() as f64).sqrt() as usize;
        if classes == 0 || classes * classes != sums.len() {
            return None;
        }
        let counts = sums
            .chunks(classes)
            .map(|row| row.iter().map(|&v| v.max(0.0) as u64).collect())
            .collect();
        Some(Self { counts })
    }

    /// Classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    fn true_count(&self, class: usize) -> u64 {
        self.counts[class].iter().sum()
    }

    fn predicted_count(&self, class: usize) -> u64 {
        self.counts.iter().map(|row| row[class]).sum()
    }

    /// Of the items predicted as `class`, the share that are.
    pub fn precision(&self, class: usize) -> f64 {
        ratio(self.counts[class][class], self.predicted_count(class))
    }

    /// Of the items of `class`, the share predicted as it.
    pub fn recall(&self, class: usize) -> f64 {
        ratio(self.counts[class][class], self.true_count(class))
    }

    /// The harmonic mean of precision and recall.
    pub fn f1(&self, class: usize) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// `precision_macro`, `recall_macro`, `f1_macro`.
    pub fn macro_values(&self) -> MetricValues {
        let present: Vec<usize> = (0..self.classes())
            .filter(|&c| self.true_count(c) > 0 || self.predicted_count(c) > 0)
            .collect();
        let mean = |f: &dyn Fn(usize) -> f64| {
            if present.is_empty() {
                0.0
            } else {
                present.iter().map(|&c| f(c)).sum::<f64>() / present.len() as f64
            }
        };
        MetricValues::from([
            (PRECISION_MACRO.to_string(), mean(&|c| self.precision(c))),
            (RECALL_MACRO.to_string(), mean(&|c| self.recall(c))),
            (F1_MACRO.to_string(), mean(&|c| self.f1(c))),
        ])
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}
