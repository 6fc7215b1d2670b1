use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mixes a seed with a counter (an epoch, a step) into a new, well-spread seed (SplitMix64).
///
/// Used wherever the trainer derives a random stream from `(seed, something)`, so that nearby
/// counters give unrelated streams.
pub fn mix_seed(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order of `len` items in `epoch`: a permutation drawn from `(seed, epoch)` when `seed` is
/// given, the identity otherwise.
///
/// ```
/// use trainer_core::data::epoch_order;
///
/// let a = epoch_order(10, Some(7), 0);
/// assert_eq!(a, epoch_order(10, Some(7), 0));
/// assert_ne!(a, epoch_order(10, Some(7), 1));
/// assert_eq!(epoch_order(3, None, 5), vec![0, 1, 2]);
/// ```
pub fn epoch_order(len: usize, seed: Option<u64>, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if let Some(seed) = seed {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, epoch as u64));
        order.shuffle(&mut rng);
    }
    order
}
