//! What the examples, tests and benches share and the library does not export: the bundled
//! digits data and an MLP classifier for it. Each program that uses it includes it as a module
//! (`#[path = ".../examples/support/mod.rs"] mod support;`).
#![allow(dead_code)]

pub mod digits;
pub mod mlp;
