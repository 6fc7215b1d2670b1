//! Events made away from the callbacks' rounds — a background uploader's, say — that an
//! [`EventLog`](crate::callback::EventLog) writes into the run's one event stream.

use super::Event;

/// A source of events made on another thread. The event log polls it whenever it writes
/// checkpoint events (each step's callback round, epochs, artifacts) and settles it before
/// `run_ended`, so that its work for the run is reported before the run's end.
pub trait EventSource: Send {
    /// The events ready now; must not block.
    fn poll(&mut self) -> Vec<Event>;

    /// Waits for the work whose events belong before `run_ended` (the last uploads), and
    /// returns the events not yet polled. By default: whatever is ready.
    fn settle(&mut self) -> Vec<Event> {
        self.poll()
    }
}
