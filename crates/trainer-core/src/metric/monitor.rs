use serde::{Deserialize, Serialize};

use super::LatestMetrics;
use super::Split;

/// Whether a smaller or a larger value of a monitored metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Smaller is better (losses).
    Min,
    /// Larger is better (accuracies).
    Max,
}

/// A metric watched for improvement: its split, its name and which way is better.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitor {
    /// The split the metric is measured on.
    pub split: Split,
    /// The metric's name within the split (`loss`, `accuracy`, ...).
    pub metric: String,
    /// Which way is better.
    pub mode: Mode,
}

impl Monitor {
    /// Watches `split`/`metric`, smaller is better.
    pub fn min(split: Split, metric: impl Into<String>) -> Self {
        Self {
            split,
            metric: metric.into(),
            mode: Mode::Min,
        }
    }

    /// Watches `split`/`metric`, larger is better.
    pub fn max(split: Split, metric: impl Into<String>) -> Self {
        Self {
            split,
            metric: metric.into(),
            mode: Mode::Max,
        }
    }

    /// `split/metric`, e.g. `valid/loss`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.split, self.metric)
    }

    /// The latest value of the metric and the step it was read at.
    pub fn read(&self, metrics: &LatestMetrics) -> Option<(f64, usize)> {
        let value = *metrics.get(self.split)?.get(&self.metric)?;
        Some((value, metrics.step_of(self.split)?))
    }

    /// Whether `candidate` is strictly better than `best` (a tie is not: the earlier value
    /// stays best). NaN is never better, and anything finite beats a NaN best.
    pub fn improves(&self, candidate: f64, best: Option<f64>) -> bool {
        if candidate.is_nan() {
            return false;
        }
        match best {
            None => true,
            Some(best) if best.is_nan() => true,
            Some(best) => self.beats(candidate, best, 0.0),
        }
    }

    /// Whether `value` is better than `reference` by more than `margin` (≥ 0): below
    /// `reference - margin` for `Min`, above `reference + margin` for `Max`.
    pub fn beats(&self, value: f64, reference: f64, margin: f64) -> bool {
        match self.mode {
            Mode::Min => value < reference - margin,
            Mode::Max => value > reference + margin,
        }
    }

    /// Orders two values best first (for ranking checkpoints); NaN ranks last.
    pub fn compare(&self, a: f64, b: f64) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => match self.mode {
                Mode::Min => a.total_cmp(&b),
                Mode::Max => b.total_cmp(&a),
            },
        }
    }
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Min => "min",
            Mode::Max => "max",
        };
        write!(f, "{} ({mode})", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::{Monitor, Split};

    #[test]
    fn better_means_lower_or_higher_by_the_mode_and_nan_never_wins() {
        let (min, max) = (
            Monitor::min(Split::Valid, "loss"),
            Monitor::max(Split::Valid, "accuracy"),
        );
        assert!(
            min.improves(0.5, None)
                && min.improves(0.4, Some(0.5))
                && !min.improves(0.5, Some(0.5))
        );
        assert!(max.improves(0.6, Some(0.5)) && !max.improves(0.4, Some(0.5)));
        // A NaN candidate never improves; a NaN best is beaten by any number.
        assert!(!min.improves(f64::NAN, None) && min.improves(9.0, Some(f64::NAN)));
        // A margin: strictly better by more than it.
        assert!(min.beats(0.89, 1.0, 0.1) && !min.beats(0.9, 1.0, 0.1));
        assert!(max.beats(1.11, 1.0, 0.1) && !max.beats(1.1, 1.0, 0.1));
        // Ranking: best first, NaN last.
        let mut values = [0.3, f64::NAN, 0.1, 0.2];
        values.sort_by(|a, b| min.compare(*a, *b));
        assert_eq!(&values[..3], [0.1, 0.2, 0.3]);
        assert!(values[3].is_nan());
        assert_eq!(min.name(), "valid/loss");
    }
}
