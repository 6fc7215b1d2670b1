use super::{Callback, Context};
use crate::error::Result;
use crate::metric::{names, Split};

/// Stops the run at the first non-finite (NaN or infinite) training loss, saying at which step.
///
/// It looks at each training-metric reading, which the trainer makes every `log_every`
/// optimizer steps: with `log_every` 1 it names the exact step; otherwise the reading is the
/// mean of the steps since the previous one, and the message names that range.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminateOnNonFinite {
    last_checked: Option<usize>,
}

impl TerminateOnNonFinite {
    /// A new callback.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Callback for TerminateOnNonFinite {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let Some(step) = ctx.metrics.step_of(Split::Train) else {
            return Ok(());
        };
        if self.last_checked == Some(step) {
            return Ok(());
        }
        let since = self.last_checked.map_or(1, |s| s + 1);
        self.last_checked = Some(step);
        let Some(&loss) = ctx.metrics.train().and_then(|m| m.get(names::LOSS)) else {
            return Ok(());
        };
        if !loss.is_finite() {
            let at = if since == step {
                format!("at step {step}")
            } else {
                format!("in steps {since}..={step}")
            };
            let reason = format!("non-finite training loss {loss} {at}");
            log::warn!("{reason}");
            ctx.control.stop(reason);
        }
        Ok(())
    }
}
