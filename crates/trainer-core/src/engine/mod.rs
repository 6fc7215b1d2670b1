//! The training engine: the one loop ([`run_loop`] over a [`StepProgram`]), the [`Trainer`]
//! contract and the supervised trainer, a program of that loop.

mod builder;
mod clip;
mod contain;
mod report;
mod run_loop;
mod supervised;

pub use builder::SupervisedTrainerBuilder;
pub use clip::clip_gradients;
pub use contain::{contain, panic_message};
pub use report::FitReport;
pub use run_loop::{run_loop, Engine, Flow, StepDone, StepProgram};
pub use supervised::SupervisedTrainer;

use crate::config::TrainerConfig;
use crate::error::Result;
use crate::state::{MetricValues, TrainingState};

/// What every trainer offers: train, validate, test, and a view of its state and config.
pub trait Trainer {
    /// Trains until the configured epochs or steps are done or a callback stops the run,
    /// validating as configured.
    fn fit(&mut self) -> Result<FitReport>;

    /// Runs the validation data through the model and returns the mean metrics.
    fn validate(&mut self) -> Result<MetricValues>;

    /// Runs the test data through the model and returns the mean metrics.
    fn test(&mut self) -> Result<MetricValues>;

    /// Where the run stands.
    fn state(&self) -> &TrainingState;

    /// The run's configuration.
    fn config(&self) -> &TrainerConfig;
}
