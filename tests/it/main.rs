//! The facade's integration tests, one binary: the `trainer` CLI, `trainer run` end to end, the
//! example killed and resumed, the digits MLP, and wgpu and flex against ndarray (with the
//! `wgpu` and `flex` features). The fuzz targets (`tests/fuzz/`) are a binary of their own: they count every
//! allocation and every panic of their process.

mod common;
#[path = "../../examples/support/mod.rs"]
mod support;

mod allocator;
mod backends;
mod captions;
mod cli;
mod flex;
mod formats;
mod isolate;
mod job;
mod job_nodes;
mod kill_resume;
mod lr_finder;
mod mlp;
mod node_requests;
mod nodes;
mod tensorboard;
mod weights;
mod wgpu;
