use serde::{Deserialize, Serialize};

use super::{Callback, Context};
use crate::error::{Result, TrainerError};
use crate::metric::{Best, Monitor, Split};

/// The key of the early-stopping callback's state in checkpoints.
pub const EARLY_STOPPING_KEY: &str = "early_stopping";
const KEY: &str = EARLY_STOPPING_KEY;

/// Stops training when a monitored metric stops improving: Keras 3's rule, with Lightning's
/// extra stops.
///
/// A check happens after each validation (for a `valid` or `test` metric) or at each epoch end
/// (for a `train` metric, on the epoch's mean), on every `check_every`-th of them.
///
/// | | Keras 3 `EarlyStopping` (what this follows) | Lightning `EarlyStopping` |
/// |---|---|---|
/// | epochs | counted from 0: epoch `e` is checked when `e >= start_from_epoch` | no `start_from_epoch` |
/// | best | none until the first checked value, which is the best (even a NaN) | starts at ±∞ |
/// | improvement | beats the best by more than `min_delta` | the same |
/// | `baseline` | resets the wait only when an improvement also beats it; the best is tracked anyway | the first value must beat it, or the run stops |
/// | stop | `wait >= patience` after a check without improvement, not in epoch 0 | the same, in any epoch |
/// | `restore_best_weights` | the best epoch's weights (the first checked epoch's until one improves), also when no value beat the baseline | not an option |
/// | non-finite values | no improvement | stop at once (`check_finite`, on by default) |
/// | thresholds | none | stop at `stopping_threshold` (good enough) or `divergence_threshold` (hopeless) |
///
/// This callback keeps Lightning's `check_finite` (on by default) and both thresholds, checked
/// first; everything else is Keras 3's rule (the wait grows on every check and an improvement
/// that misses the baseline neither resets it nor stops the run).
///
/// With `restore_best_weights`, the trainer keeps (references to) the weights of each new best
/// and puts them back when training ends, early or not. The wait, the best value and the kept
/// weights are in every checkpoint, so a resumed run goes on where it was.
///
/// ```
/// use trainer_core::callback::EarlyStopping;
/// use trainer_core::metric::{Monitor, Split};
///
/// let early = EarlyStopping::new(Monitor::min(Split::Valid, "loss"))
///     .patience(3)
///     .min_delta(1e-4)
///     .restore_best_weights(true);
/// # let _ = early;
/// ```
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    min_delta: f64,
    baseline: Option<f64>,
    restore_best_weights: bool,
    check_finite: bool,
    stopping_threshold: Option<f64>,
    divergence_threshold: Option<f64>,
    start_from_epoch: usize,
    check_every: usize,
    state: EarlyStoppingState,
}

/// What survives a resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct EarlyStoppingState {
    best: Option<Best>,
    wait: usize,
    validations: usize,
    stopped: Option<String>,
    /// Whether weights were kept (from the first checked epoch on, with
    /// `restore_best_weights`).
    kept: bool,
}

/// The state as checkpoints hold it: formats 1.0 and 1.1 wrote the best value as a number with
/// a `best_step` beside it.
#[derive(Deserialize)]
struct StoredState {
    best: Option<StoredBest>,
    #[serde(default)]
    best_step: Option<usize>,
    wait: usize,
    validations: usize,
    stopped: Option<String>,
    /// Absent before format 1.2: weights were kept exactly when there was a best.
    #[serde(default)]
    kept: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StoredBest {
    Best(Best),
    Value(f64),
}

impl From<StoredState> for EarlyStoppingState {
    fn from(stored: StoredState) -> Self {
        let best = stored.best.map(|best| match best {
            StoredBest::Best(best) => best,
            StoredBest::Value(value) => Best {
                value,
                step: stored.best_step.unwrap_or(0),
                epoch: 0,
            },
        });
        let kept = stored.kept.unwrap_or(best.is_some());
        Self {
            best,
            wait: stored.wait,
            validations: stored.validations,
            stopped: stored.stopped,
            kept,
        }
    }
}

impl EarlyStopping {
    /// Watches `monitor` with patience 3, no min_delta, check_finite on.
    pub fn new(monitor: Monitor) -> Self {
        Self {
            monitor,
            patience: 3,
            min_delta: 0.0,
            baseline: None,
            restore_best_weights: false,
            check_finite: true,
            stopping_threshold: None,
            divergence_threshold: None,
            start_from_epoch: 0,
            check_every: 1,
            state: EarlyStoppingState::default(),
        }
    }

    /// Checks without improvement before stopping (0: the first check without one stops).
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// How much better than the best a value must be to count as an improvement (≥ 0).
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta.abs();
        self
    }

    /// A value an improvement must also beat to reset the wait (Keras's `baseline`): until one
    /// does, the wait keeps growing, though the best is still tracked (and restored).
    pub fn baseline(mut self, baseline: f64) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// Put the best weights back at the end of training.
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }

    /// Stop when the value is NaN or infinite (default on).
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }

    /// Stop as soon as the value is better than this.
    pub fn stopping_threshold(mut self, threshold: f64) -> Self {
        self.stopping_threshold = Some(threshold);
        self
    }

    /// Stop as soon as the value is worse than this.
    pub fn divergence_threshold(mut self, threshold: f64) -> Self {
        self.divergence_threshold = Some(threshold);
        self
    }

    /// Skip the checks of epochs `0..epochs` (Keras's `start_from_epoch`, epochs counted from 0:
    /// with 2, the first check is in the third epoch).
    pub fn start_from_epoch(mut self, epochs: usize) -> Self {
        self.start_from_epoch = epochs;
        self
    }

    /// Check on every N-th validation (or epoch end, for a train metric); at least 1.
    pub fn check_every(mut self, validations: usize) -> Self {
        self.check_every = validations.max(1);
        self
    }

    /// The best value seen, with the optimizer step and epoch it was seen at.
    pub fn best(&self) -> Option<Best> {
        self.state.best
    }

    /// Checks since the last improvement.
    pub fn wait(&self) -> usize {
        self.state.wait
    }

    /// Why it stopped the run, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.state.stopped.as_deref()
    }

    /// The value to judge, if this hook brings one.
    fn reading(&self, ctx: &Context<'_>, at_epoch_end: bool) -> Result<Option<f64>> {
        let values = match (self.monitor.split, at_epoch_end) {
            (Split::Train, true) => ctx.state.history.last().map(|e| &e.train),
            (Split::Train, false) | (_, true) => return Ok(None),
            (split, false) => ctx.metrics.get(split),
        };
        let Some(values) = values else {
            return Ok(None);
        };
        match values.get(&self.monitor.metric) {
            Some(value) => Ok(Some(*value)),
            None => Err(TrainerError::Callback {
                callback: KEY.into(),
                message: format!(
                    "monitored metric `{}` does not exist; {} has: {}",
                    self.monitor.name(),
                    self.monitor.split,
                    values.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    fn check(&mut self, ctx: &mut Context<'_>, at_epoch_end: bool) -> Result<()> {
        let Some(value) = self.reading(ctx, at_epoch_end)? else {
            return Ok(());
        };
        self.state.validations += 1;
        let epoch = keras_epoch(ctx.state);
        if epoch < self.start_from_epoch || !self.state.validations.is_multiple_of(self.check_every)
        {
            return Ok(());
        }
        let name = self.monitor.name();
        let stop = if self.check_finite && !value.is_finite() {
            Some(format!("early stopping: {name} = {value} is not finite"))
        } else if self
            .stopping_threshold
            .is_some_and(|t| self.monitor.beats(value, t, 0.0))
        {
            Some(format!(
                "early stopping: {name} = {value} reached the stopping threshold {}",
                self.stopping_threshold.unwrap_or_default()
            ))
        } else if self
            .divergence_threshold
            .is_some_and(|t| self.monitor.beats(t, value, 0.0))
        {
            Some(format!(
                "early stopping: {name} = {value} is past the divergence threshold {}",
                self.divergence_threshold.unwrap_or_default()
            ))
        } else {
            self.keras_check(ctx, value, epoch)
        };
        if let Some(reason) = stop {
            log::info!("{reason}");
            self.state.stopped = Some(reason.clone());
            ctx.control.stop(reason);
        }
        Ok(())
    }
}

impl EarlyStopping {
    /// Keras 3's rule for one checked value in (0-based) `epoch`; the reason to stop, if it is
    /// time.
    fn keras_check(&mut self, ctx: &mut Context<'_>, value: f64, epoch: usize) -> Option<String> {
        if self.restore_best_weights && !self.state.kept {
            // Until a value improves, the first checked epoch's weights are the best.
            self.state.kept = true;
            ctx.control.keep_weights();
        }
        self.state.wait += 1;
        // Keras 3.15: the first checked value is the best, whatever it is (a NaN, then, is never
        // beaten: with `check_finite` on, as by default, a NaN stops the run first).
        let improved = match &self.state.best {
            None => true,
            Some(best) => self.monitor.beats(value, best.value, self.min_delta),
        };
        if improved {
            self.state.best = Some(Best {
                value,
                step: ctx.state.global_step,
                epoch: ctx.state.epoch,
            });
            if self.restore_best_weights {
                ctx.control.keep_weights();
            }
            if self
                .baseline
                .is_none_or(|baseline| self.monitor.beats(value, baseline, self.min_delta))
            {
                self.state.wait = 0;
            }
            return None;
        }
        (self.state.wait >= self.patience && epoch > 0).then(|| {
            format!(
                "early stopping: {} did not improve for {} checks (patience {}, best {})",
                self.monitor.name(),
                self.state.wait,
                self.patience,
                self.state
                    .best
                    .map_or("none".into(), |b| b.value.to_string())
            )
        })
    }
}

/// The epoch a check belongs to, counted from 0 as Keras counts: at an epoch's end the state
/// already counts it as finished.
fn keras_epoch(state: &crate::state::TrainingState) -> usize {
    if state.batch_in_epoch == 0 {
        state.epoch.saturating_sub(1)
    } else {
        state.epoch
    }
}

impl Callback for EarlyStopping {
    fn key(&self) -> Option<String> {
        Some(KEY.into())
    }

    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let known = ctx.metric_names(self.monitor.split);
        if !known.contains(&self.monitor.metric.as_str()) {
            return Err(TrainerError::Callback {
                callback: KEY.into(),
                message: format!(
                    "monitored metric `{}` does not exist; {} has: {}",
                    self.monitor.name(),
                    self.monitor.split,
                    if known.is_empty() {
                        "nothing (no such data or no validation configured)".into()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        self.state.stopped = None;
        Ok(())
    }

    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.check(ctx, false)
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.check(ctx, true)
    }

    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if self.restore_best_weights && self.state.kept {
            ctx.control.restore_kept_weights();
        }
        Ok(())
    }

    fn state(&self) -> Option<serde_json::Value> {
        Some(serde_json::to_value(&self.state).expect("early stopping state serializes"))
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        let stored: StoredState =
            serde_json::from_value(state).map_err(|e| TrainerError::State {
                key: KEY.into(),
                message: e.to_string(),
            })?;
        self.state = stored.into();
        Ok(())
    }
}
