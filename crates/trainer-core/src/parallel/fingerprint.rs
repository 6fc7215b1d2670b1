//! A fingerprint of a model's weights, to check that replicas hold the same ones.

use std::hash::{DefaultHasher, Hasher};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A hash of every float parameter's bytes, in visiting order (equal weights, equal
/// fingerprints; it reads the weights back to the host).
pub(crate) fn weights_fingerprint<B: Backend, M: Module<B>>(model: &M) -> u64 {
    struct Hash(DefaultHasher);
    impl<B: Backend> ModuleVisitor<B> for Hash {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.write(&param.val().into_data().bytes);
        }
    }
    let mut hash = Hash(DefaultHasher::new());
    model.visit(&mut hash);
    hash.0.finish()
}
