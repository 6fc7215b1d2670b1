use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{JobError, Result};

/// Tells the runtime to stop: a flag set by SIGINT / SIGTERM (once
/// [`with_signals`](CancelToken::with_signals) is called) or by [`cancel`](CancelToken::cancel),
/// or a cancel file that appears. The runtime checks it before each step; a cancelled job
/// finishes its step, writes a checkpoint and ends with status `cancelled`.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    file: Option<PathBuf>,
}

impl CancelToken {
    /// A token that only [`cancel`](CancelToken::cancel) sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also cancels when `file` exists.
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Also cancels on SIGINT and SIGTERM (Ctrl-C and `kill`; Ctrl-C and Ctrl-Break on
    /// Windows), which then no longer end the process at once.
    pub fn with_signals(self) -> Result<Self> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, self.flag.clone()).map_err(|e| {
                JobError::Setting {
                    name: format!("signal {signal}"),
                    message: format!("cannot install a handler: {e}"),
                }
            })?;
        }
        Ok(self)
    }

    /// Cancels.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// How the job was cancelled, if it was.
    pub fn reason(&self) -> Option<String> {
        if self.flag.load(Ordering::SeqCst) {
            return Some("cancel requested (SIGINT, SIGTERM or CancelToken::cancel)".into());
        }
        let file = self.file.as_ref()?;
        file.exists()
            .then(|| format!("cancel file {} appeared", file.display()))
    }
}
