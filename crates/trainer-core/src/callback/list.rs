use std::collections::BTreeMap;

use super::{Callback, Context, Hook};
use crate::error::{Result, TrainerError};

/// The callbacks of a run, in call order: the order given, except that those whose
/// [`runs_last`](Callback::runs_last) is true come after the others.
#[derive(Default)]
pub struct CallbackList {
    callbacks: Vec<Box<dyn Callback>>,
}

impl CallbackList {
    /// Orders the callbacks and checks that stateful ones have unique keys.
    pub fn new(callbacks: Vec<Box<dyn Callback>>) -> Result<Self> {
        let mut seen = BTreeMap::new();
        for (index, callback) in callbacks.iter().enumerate() {
            if let Some(key) = callback.key() {
                if let Some(first) = seen.insert(key.clone(), index) {
                    return Err(TrainerError::Callback {
                        callback: key,
                        message: format!(
                            "callbacks {first} and {index} share this key; stateful callbacks need unique keys"
                        ),
                    });
                }
            }
        }
        let (mut ordered, last): (Vec<_>, Vec<_>) =
            callbacks.into_iter().partition(|c| !c.runs_last());
        ordered.extend(last);
        Ok(Self { callbacks: ordered })
    }

    /// Number of callbacks.
    pub fn len(&self) -> usize {
        self.callbacks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    /// Calls `hook` on every callback in order; the first error stops the round.
    pub fn run(&mut self, hook: Hook, ctx: &mut Context<'_>) -> Result<()> {
        for callback in &mut self.callbacks {
            match hook {
                Hook::TrainBegin => callback.on_train_begin(ctx)?,
                Hook::TrainEnd => callback.on_train_end(ctx)?,
                Hook::EpochBegin => callback.on_epoch_begin(ctx)?,
                Hook::EpochEnd => callback.on_epoch_end(ctx)?,
                Hook::BatchBegin => callback.on_batch_begin(ctx)?,
                Hook::BatchEnd => callback.on_batch_end(ctx)?,
                Hook::ValidationBegin => callback.on_validation_begin(ctx)?,
                Hook::ValidationEnd => callback.on_validation_end(ctx)?,
                Hook::TestBegin => callback.on_test_begin(ctx)?,
                Hook::TestEnd => callback.on_test_end(ctx)?,
                Hook::Checkpoint => callback.on_checkpoint(ctx)?,
            }
        }
        Ok(())
    }

    /// Hands `snapshot` to every callback in order; the first error stops the round.
    pub fn run_snapshot(
        &mut self,
        ctx: &mut Context<'_>,
        snapshot: &std::sync::Arc<crate::checkpoint::Snapshot>,
    ) -> Result<()> {
        for callback in &mut self.callbacks {
            callback.on_snapshot(ctx, snapshot)?;
        }
        Ok(())
    }

    /// Tells every callback of an artifact; the first error stops the round. An artifact whose
    /// kind is one of the event log's own event names is refused.
    pub fn run_artifact(
        &mut self,
        ctx: &mut Context<'_>,
        artifact: &super::Artifact,
    ) -> Result<()> {
        if super::RESERVED_EVENT_NAMES.contains(&artifact.kind.as_str()) || artifact.kind.is_empty()
        {
            return Err(TrainerError::Callback {
                callback: "artifact".into(),
                message: format!(
                    "an artifact's kind {:?} is empty or an event name of the log's own",
                    artifact.kind
                ),
            });
        }
        for callback in &mut self.callbacks {
            callback.on_artifact(ctx, artifact)?;
        }
        Ok(())
    }

    /// Calls `on_exception` on every callback.
    /// A callback that panics here is logged and skipped: the others still hear of the error.
    pub fn run_exception(&mut self, ctx: &mut Context<'_>, error: &TrainerError) {
        for callback in &mut self.callbacks {
            let heard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                callback.on_exception(ctx, error)
            }));
            if let Err(payload) = heard {
                log::error!(
                    "callback `{}` panicked in on_exception: {}",
                    callback.key().unwrap_or_else(|| "(no key)".into()),
                    crate::error::panic_message(payload.as_ref())
                );
            }
        }
    }

    /// The state of every stateful callback, by key.
    pub fn states(&self) -> BTreeMap<String, serde_json::Value> {
        self.callbacks
            .iter()
            .filter_map(|c| Some((c.key()?, c.state()?)))
            .collect()
    }

    /// Gives each stateful callback its stored state. A stored key no callback has is logged
    /// and skipped (a run may resume with fewer callbacks); a callback without stored state
    /// keeps its own.
    pub fn load_states(&mut self, mut states: BTreeMap<String, serde_json::Value>) -> Result<()> {
        for callback in &mut self.callbacks {
            if let Some(key) = callback.key() {
                if let Some(state) = states.remove(&key) {
                    callback.load_state(state)?;
                }
            }
        }
        for key in states.into_keys() {
            log::warn!("the checkpoint holds state for callback `{key}`, which this run does not have: skipped");
        }
        Ok(())
    }
}
