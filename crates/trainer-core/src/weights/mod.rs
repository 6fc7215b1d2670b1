//! Weights in and out of the files other frameworks read: a checkpoint's module as a
//! safetensors file (burn's names and layout, or PyTorch's for the layers it knows), and a
//! model initialised from a safetensors or PyTorch (`.pt`, `.pth`) file. Foreign files are
//! untrusted as checkpoints are: every tensor's name, shape, dtype and byte length is checked
//! against the model before burn sees it.

mod export;
mod import;
mod layout;

pub use export::{export_safetensors, ExportReport};
pub use import::{load_weights, ImportReport};
pub use layout::Layout;
