//! The checkpoint file: a fixed header, then a MessagePack payload, written atomically.
//!
//! The layout is in `docs/checkpoint-format.md`. [`encode`] and [`decode`] turn any serde
//! payload into the bytes of a file and back; [`write_atomic`] puts bytes on disk so that a
//! crash leaves either the old file or the new one, never a mix; [`read`] loads and checks a file.

mod file;
mod header;

pub use file::{decode, encode, read, write_atomic};
pub use header::{Header, FORMAT_MAJOR, FORMAT_MINOR, HEADER_LEN, MAGIC};
