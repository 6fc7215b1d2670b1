use serde::{Deserialize, Serialize};

/// The hook points of a run, in the words of the [`Callback`](super::Callback) methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// `on_train_begin`.
    TrainBegin,
    /// `on_train_end`.
    TrainEnd,
    /// `on_epoch_begin`.
    EpochBegin,
    /// `on_epoch_end`.
    EpochEnd,
    /// `on_batch_begin`.
    BatchBegin,
    /// `on_batch_end`.
    BatchEnd,
    /// `on_validation_begin`.
    ValidationBegin,
    /// `on_validation_end`.
    ValidationEnd,
    /// `on_test_begin`.
    TestBegin,
    /// `on_test_end`.
    TestEnd,
    /// `on_checkpoint`.
    Checkpoint,
}
