//! Over several machines every node runs the callbacks on its own training metrics, clock and
//! signals, so one node may ask to stop (or to checkpoint, or to keep or restore weights) where
//! another does not. The nodes agree on each round's requests instead: a request made on any
//! node holds on every node, at the same step.

use crate::callback::{Control, Hook};
use crate::error::Result;

/// The callbacks' requests of rounds without an agreement of their own, kept for the next one.
#[derive(Debug, Default)]
pub struct NodeRequests {
    stop: Option<String>,
    keep_weights: bool,
    restore_kept_weights: bool,
}

/// Whether the nodes agree after `hook`'s round: after each batch, the epoch's and the run's
/// opening and closing rounds, and validation's (every node validates at the same points, and
/// a weight kept there must be kept before the next step). A request made before a batch or in
/// `on_checkpoint` waits for the next of these: one collective call per step, not two.
pub fn agrees_after(hook: Hook) -> bool {
    matches!(
        hook,
        Hook::TrainBegin
            | Hook::EpochBegin
            | Hook::BatchEnd
            | Hook::EpochEnd
            | Hook::ValidationBegin
            | Hook::ValidationEnd
    )
}

impl NodeRequests {
    /// After `hook`'s round: takes the round's requests out of `control`, and where the nodes
    /// agree ([`agrees_after`]) hands `agree` this node's flags (stop, checkpoint, keep weights,
    /// restore kept weights, then `extra`) and puts what any node asked for back into
    /// `control`. Returns the agreed `extra` flags, or `None` after a round without agreement.
    /// Call it only on several machines, and not at the end of the run.
    pub fn settle(
        &mut self,
        hook: Hook,
        control: &mut Control,
        extra: &[bool],
        agree: impl FnOnce(Vec<bool>) -> Result<Vec<bool>>,
    ) -> Result<Option<Vec<bool>>> {
        if let Some(reason) = control.take_stop() {
            self.stop.get_or_insert(reason);
        }
        self.keep_weights |= control.take_keep_weights();
        self.restore_kept_weights |= control.take_restore_kept_weights();
        if !agrees_after(hook) {
            return Ok(None);
        }
        let held = std::mem::take(self);
        let mut asked = vec![
            held.stop.is_some(),
            control.checkpoint_requested(),
            held.keep_weights,
            held.restore_kept_weights,
        ];
        asked.extend_from_slice(extra);
        let agreed = agree(asked)?;
        match held.stop {
            Some(reason) => control.stop(reason),
            None if agreed[0] => control.stop("another node's callbacks stopped the run"),
            None => {}
        }
        if agreed[1] {
            control.save_checkpoint();
        }
        if agreed[2] {
            control.keep_weights();
        }
        if agreed[3] {
            control.restore_kept_weights();
        }
        Ok(Some(agreed[4..].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agreement_per_batch() {
        let agreeing: Vec<Hook> = [
            Hook::TrainBegin,
            Hook::EpochBegin,
            Hook::BatchBegin,
            Hook::BatchEnd,
            Hook::Checkpoint,
            Hook::ValidationBegin,
            Hook::ValidationEnd,
            Hook::EpochEnd,
            Hook::TrainEnd,
        ]
        .into_iter()
        .filter(|h| agrees_after(*h))
        .collect();
        assert_eq!(
            agreeing,
            [
                Hook::TrainBegin,
                Hook::EpochBegin,
                Hook::BatchEnd,
                Hook::ValidationBegin,
                Hook::ValidationEnd,
                Hook::EpochEnd
            ]
        );
    }

    #[test]
    fn a_request_held_from_before_the_batch_and_another_nodes_stop_are_agreed() {
        let mut requests = NodeRequests::default();
        let mut control = Control::default();
        control.stop("mine");
        control.keep_weights();
        // Before the batch: held, out of the control, no agreement.
        let none = requests
            .settle(Hook::BatchBegin, &mut control, &[], |_| {
                panic!("no agreement")
            })
            .unwrap();
        assert_eq!((none, control.stop_requested()), (None, None));
        // After it: this node's held requests go out, and come back as agreed.
        let extra = requests
            .settle(Hook::BatchEnd, &mut control, &[false], |asked| {
                assert_eq!(asked, [true, false, true, false, false]);
                Ok(vec![true, true, true, false, true])
            })
            .unwrap();
        assert_eq!(extra, Some(vec![true]));
        assert_eq!(control.stop_requested(), Some("mine"));
        assert!(control.checkpoint_requested() && control.take_keep_weights());
        // Another node stopped: this one did not ask, and is told why it stops.
        let mut control = Control::default();
        requests
            .settle(Hook::EpochEnd, &mut control, &[], |asked| {
                assert_eq!(asked, [false; 4]);
                Ok(vec![true, false, false, false])
            })
            .unwrap();
        assert_eq!(
            control.stop_requested(),
            Some("another node's callbacks stopped the run")
        );
    }
}
