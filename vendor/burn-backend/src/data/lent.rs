// PATCHED (trainer, see vendor/README.md): this file is new.
//! Buffers lent to the decoder of [`TensorData`](super::TensorData) for one decoding.
//!
//! A reader that put a tensor's bytes in a buffer of their own (read from a file straight into
//! memory of the element's type) decodes the rest of the input with an empty byte string in
//! their place; the decoder takes the buffer registered at that empty string's address instead
//! of copying bytes out of the input. Only an empty byte string lent by the deserializer (a
//! slice of the input, as rmp-serde's `from_slice` lends) at a registered address is replaced,
//! so no other input decodes differently.

use alloc::collections::BTreeMap;
use core::cell::RefCell;

use burn_std::Bytes;

std::thread_local! {
    static LENT: RefCell<Option<BTreeMap<usize, Bytes>>> = const { RefCell::new(None) };
}

/// Runs `decode` with `buffers` lent to the decoder of `TensorData` on this thread: each stands
/// for the empty byte string whose address in the decoded input is its key. Returns what
/// `decode` returned and the buffers it did not take (the input's values that no `TensorData`
/// decoded). The buffers are withdrawn when `decode` returns or unwinds.
pub fn decode_with_lent_buffers<R>(
    buffers: BTreeMap<usize, Bytes>,
    decode: impl FnOnce() -> R,
) -> (R, BTreeMap<usize, Bytes>) {
    struct Withdraw(Option<BTreeMap<usize, Bytes>>);
    impl Drop for Withdraw {
        fn drop(&mut self) {
            LENT.with(|lent| *lent.borrow_mut() = self.0.take());
        }
    }
    let outer = LENT.with(|lent| lent.borrow_mut().replace(buffers));
    let restore = Withdraw(outer);
    let result = decode();
    let left = LENT.with(|lent| lent.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (result, left)
}

/// The buffer lent for the empty byte string at `address`, taken (each is given out once).
pub(crate) fn take_lent(address: usize) -> Option<Bytes> {
    LENT.with(|lent| lent.borrow_mut().as_mut()?.remove(&address))
}
