//! trainer-core's integration tests, one binary (each file a module; `common` their shared
//! models and data). `failed_write.rs` stays a binary of its own: it sets a process-wide file
//! size limit that would fail the writes of every test running beside it.

mod common;

mod checkpoint_load;
mod checkpointing;
mod config;
mod data_parallel;
mod early_stopping;
mod engine;
mod event_log;
mod faults;
mod hostile_checkpoint;
mod layers;
mod lent_load;
mod loader;
mod metrics;
mod progress;
mod resume;
mod schedule_engine;
mod schedules;
mod tensor_decoding;
mod user_metric;
