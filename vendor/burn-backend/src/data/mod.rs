mod compare;
// PATCHED (trainer, see vendor/README.md): buffers lent to the `TensorData` decoder.
#[cfg(feature = "std")]
mod lent;
mod tensor;

pub use compare::*;
#[cfg(feature = "std")]
pub use lent::decode_with_lent_buffers;
pub use tensor::*;
