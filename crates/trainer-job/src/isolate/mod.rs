//! Subprocess contract v1: the trainer's step code runs in a child process that the runtime
//! drives, so that a segfault, abort or out-of-memory kill in it ends the job `failed` with the
//! child's exit status, its checkpoints intact, instead of taking the runtime down with its
//! events unfinished.
//!
//! The runtime keeps the feed, cadence, events, checkpoint folder, uploads and the terminal
//! status; its step hooks are a [`proxy`](ChildHooks) that forwards each call to the child.
//! The child is the same program started with `--isolate-child CONTRACT`: it reads the
//! [`Contract`], makes the registered trainer, and [`serve`]s the calls. Batches cross as Arrow
//! IPC files at `arrow_ipc_path`, state dicts as MessagePack at `state_path`, the calls and their
//! results as JSON lines (`protocol.rs`). `docs/job.md` ("Isolation") describes the contract.

mod child;
mod contract;
mod ipc;
mod protocol;
mod proxy;

pub use child::serve;
pub use contract::{Contract, CONTRACT_VERSIONS, ISOLATE_DIR};
pub use proxy::{ChildExit, ChildHooks, CONTRACT_ENV};
