//! Panics in code the engine calls (the user's step, callbacks, hooks, batchers) become errors
//! of the run, so that a run always ends by saying how it ended.

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use crate::error::panic_message;
use crate::error::{Result, TrainerError};

/// Runs `f`; a panic in it becomes [`TrainerError::Panicked`], naming what was `during` and
/// carrying the panic's message.
///
/// ```
/// use trainer_core::engine::contain;
///
/// let error = contain("a user step", || -> trainer_core::Result<()> { panic!("boom") }).unwrap_err();
/// assert_eq!(error.to_string(), "a panic during a user step: boom");
/// ```
pub fn contain<R>(during: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(TrainerError::Panicked {
            during: during.to_string(),
            message: panic_message(payload.as_ref()),
        }),
    }
}
