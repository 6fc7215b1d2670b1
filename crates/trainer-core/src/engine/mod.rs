//! The training engine: the one loop ([`run_loop`] over a [`StepProgram`]), and the supervised
//! trainer, a program of that loop (the job runtime, in `trainer-job`, is the other).

mod builder;
mod clip;
mod contain;
mod lr_finder;
mod node_requests;
mod report;
mod resume_check;
mod run_loop;
mod supervised;
mod throughput;

pub use builder::{SupervisedTrainerBuilder, DEFAULT_COLLECTIVE_TIMEOUT};
pub use clip::clip_gradients;
pub use contain::{contain, panic_message};
pub use lr_finder::{steepest_fall, LrFinderConfig, LrFinderResult};
pub use node_requests::{agrees_after, NodeRequests};
pub use report::FitReport;
pub use resume_check::data_order_change;
pub use run_loop::{run_loop, Engine, Flow, StepDone, StepProgram};
pub use supervised::{SupervisedModel, SupervisedOptimizer, SupervisedTrainer};
pub use throughput::{Pace, Throughput};
