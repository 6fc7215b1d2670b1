//! Data parallelism on burn-collective: replicas of one model train in step, each on its own
//! device and thread and its own share of every epoch, and average their gradients before every
//! optimizer step, so that they stay bit-identical.
//!
//! This module holds what does not depend on the trainer: the one buffer a step's gradients
//! travel in (`flat`), the peers' collective calls with their safety net (`collective`), and
//! the settings of a run over several machines ([`NodeConfig`]). The supervised trainer's
//! replicas use them (`engine/supervised/replicas`); programs that own their steps (the job
//! runtime) join the other nodes as a [`NodePeer`].

pub(crate) mod agreement;
pub(crate) mod call_thread;
pub(crate) mod collective;
pub(crate) mod fingerprint;
pub(crate) mod flat;
pub(crate) mod host_move;
mod node_peer;
mod nodes;
mod peer_group;

pub use node_peer::{start_token, NodePeer};
pub(crate) use nodes::global_ranks;
pub use nodes::NodeConfig;
