//! What the examples, tests and benches share and the library does not export: the bundled
//! digits data, an MLP classifier for it, and flag parsers. Each program that uses it includes it as a module
//! (`#[path = ".../examples/support/mod.rs"] mod support;`).
#![allow(dead_code)]

pub mod digits;
pub mod flags;
pub mod mlp;
