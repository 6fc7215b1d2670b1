//! The names of the metrics the trainer reports, in one place: the event log, the CSV header,
//! monitors and the progress bars all spell them from here.

/// The mean loss of the batches (summed over items, divided by the items).
pub const LOSS: &str = "loss";
/// Items whose largest logit is their target, over the classified items.
pub const ACCURACY: &str = "accuracy";
/// The learning rate the step used (training readings only).
pub const LR: &str = "lr";
/// Macro precision of a classifier's validation or test pass.
pub const PRECISION_MACRO: &str = "precision_macro";
/// Macro recall of a classifier's validation or test pass.
pub const RECALL_MACRO: &str = "recall_macro";
/// Macro F1 of a classifier's validation or test pass.
pub const F1_MACRO: &str = "f1_macro";
/// The key of the confusion counts among a window's summed statistics (not a reported value).
pub const CONFUSION: &str = "confusion";
/// Seconds of training so far.
pub const ELAPSED_SECONDS: &str = "elapsed_seconds";
/// Seconds left at the window's pace, when the run's length is known.
pub const ETA_SECONDS: &str = "eta_seconds";
/// Items per second over the logging window.
pub const SAMPLES_PER_SECOND: &str = "samples_per_second";
/// Optimizer steps per second over the logging window.
pub const STEPS_PER_SECOND: &str = "steps_per_second";

/// The training metrics that measure time and throughput: they differ between any two runs, so
/// comparisons of runs and default plots leave them out.
pub const TIMING_METRICS: [&str; 4] = [
    ELAPSED_SECONDS,
    ETA_SECONDS,
    SAMPLES_PER_SECOND,
    STEPS_PER_SECOND,
];

/// The name of the top-`k` accuracy (`top5_accuracy`).
pub fn top_k_accuracy(k: usize) -> String {
    format!("top{k}_accuracy")
}
