//! trainer-job's integration tests, one binary (each file a module; `common` builds jobs and
//! parquet tables for them).

mod common;

mod feed;
mod formats;
mod runtime;
mod spec;
