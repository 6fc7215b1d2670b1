//! Backend-generic training machinery for [burn](https://burn.dev): the trainer, its config and
//! state, callbacks, a deterministic resumable data loader, device-side metrics, and the
//! learning-rate schedule seam.
//!
//! Nothing here names a concrete backend: everything is generic over `B: AutodiffBackend`, and the
//! `trainer-gpu` crate picks the backend.
#![warn(missing_docs)]

pub mod callback;
pub mod checkpoint;
mod config;
pub mod data;
pub mod engine;
mod error;
pub mod event;
pub mod fs;
pub mod init;
pub mod metric;
pub mod parallel;
pub mod schedule;
mod split;
mod state;
mod step;
pub mod weights;

pub use config::{
    Frequency, GradientClipping, ScheduleInterval, TrainerConfig, MAX_PREFETCH_BATCHES,
    MAX_REPLICAS,
};
pub use engine::{FitReport, SupervisedTrainer, SupervisedTrainerBuilder};
pub use error::{panic_message, Result, TrainerError};
pub use split::Split;
pub use state::{
    unix_ms_now, Best, BestMetric, EpochSummary, MetricValues, StopReason, TrainingState,
};
pub use step::{Classification, Regression, StepOutput, Task, TrainStep, ValidStep};

/// The names most programs need.
pub mod prelude {
    pub use crate::callback::{
        Callback, Checkpointing, Context, Control, EarlyStopping, EventLog, Progress, TensorBoard,
        TerminateOnNonFinite, TimeLimit,
    };
    pub use crate::checkpoint::Retention;
    pub use crate::data::{DataCursor, DataLoader};
    pub use crate::metric::{Metric, Monitor, Split};
    pub use crate::schedule::{ConstantLr, LrSchedule};
    pub use crate::{
        FitReport, Frequency, GradientClipping, StepOutput, SupervisedTrainer, TrainStep,
        TrainerConfig, TrainerError, TrainingState, ValidStep,
    };
}
