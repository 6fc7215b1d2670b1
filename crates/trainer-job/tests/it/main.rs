//! trainer-job's integration tests, one binary (each file a module; `common` builds jobs and
//! parquet tables for them).

mod common;

mod artifacts;
mod columns;
mod feed;
mod formats;
mod helpers;
mod plateau;
mod replicas;
mod runtime;
mod spec;
mod uploads;
