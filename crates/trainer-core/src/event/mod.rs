//! The event schema shared by the supervised trainer and the job runtime, and the files it is
//! written to: JSON lines (`events.jsonl`), CSV (`metrics.csv`) and TensorBoard's event files,
//! all safe to append to after a resume. The schema is documented in `docs/events.md`.

mod csv;
mod jsonl;
mod schema;
mod source;
mod tfevents;

pub use csv::MetricsCsv;
pub use jsonl::{EventWriter, ResumeAt};
pub use schema::{Event, EventKind, Reading, RunStatus, EVENT_SCHEMA_VERSION};
pub use source::EventSource;
pub use tfevents::{masked_crc32c, TfEventsWriter, TFEVENTS_PREFIX};
