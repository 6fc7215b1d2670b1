//! Before the first step of a run over several machines, the peers check that they start from
//! the same point: the same weights, and the same step of the same epoch. Nodes that resumed
//! from checkpoints of different steps, or that were started with another seed or other
//! initial weights, would otherwise train on silently (each applying the same averaged update
//! to different weights) or meet at different all-reduces.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::collective;

/// Bits per piece: a token travels as pieces small enough that their sum over every peer is an
/// exact float (16 × 4096 peers < 2^24), so equal tokens average to themselves exactly.
const PIECE_BITS: u32 = 4;
const PIECES: usize = (u64::BITS / PIECE_BITS) as usize;

/// The token peers compare: a hash of the weights' fingerprint and the position in training.
pub(crate) fn start_token(weights: u64, global_step: u64, epoch: usize, batch: usize) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut hash = DefaultHasher::new();
    for value in [weights, global_step, epoch as u64, batch as u64] {
        hash.write_u64(value);
    }
    hash.finish()
}

/// Averages `token` over all `peers` (every peer of the run calls this once, `rank` being its
/// rank over all nodes) and fails when the average is not this peer's own token: some peer
/// started from another point. At least the peers whose token is the largest or the smallest
/// see it; the others fail at their next collective call, when those have stopped.
pub(crate) fn agree<B: Backend>(
    rank: usize,
    peers: usize,
    device: &B::Device,
    token: u64,
) -> Result<(), String> {
    let own = pieces(token);
    let tensor = Tensor::<B, 1>::from_data(TensorData::new(own.to_vec(), [PIECES]), device);
    let averaged = collective::mean::<B>(rank, tensor)?;
    let averaged: Vec<f32> = averaged
        .into_data()
        .to_vec()
        .map_err(|e| format!("reading the start check back: {e:?}"))?;
    // Differing pieces move the average of the largest one by at least 1 / peers.
    let tolerance = 0.5 / peers.max(1) as f32;
    if averaged
        .iter()
        .zip(own)
        .any(|(average, piece)| (average - piece).abs() > tolerance)
    {
        return Err(
            "the peers do not start from the same point: their weights, step, epoch or \
             batch differ (resume every node from a checkpoint of the same step, and start \
             every node with the same seed, data and initial weights)"
                .into(),
        );
    }
    Ok(())
}

/// Which of `flags` any peer raised: every peer of the run calls this at the same point with
/// as many flags (`rank` being its rank over all nodes). The mean of 0s and 1s over the peers
/// is exact, and above 0 exactly when one peer said yes.
pub(crate) fn any<B: Backend>(
    rank: usize,
    device: &B::Device,
    flags: &[bool],
) -> Result<Vec<bool>, String> {
    let values: Vec<f32> = flags.iter().map(|&f| f as u8 as f32).collect();
    let tensor = Tensor::<B, 1>::from_data(TensorData::new(values, [flags.len()]), device);
    let averaged: Vec<f32> = collective::mean::<B>(rank, tensor)?
        .into_data()
        .to_vec()
        .map_err(|e| format!("reading the agreement back: {e:?}"))?;
    Ok(averaged.into_iter().map(|mean| mean > 0.0).collect())
}

fn pieces(token: u64) -> [f32; PIECES] {
    let mask = (1u64 << PIECE_BITS) - 1;
    std::array::from_fn(|i| ((token >> (i as u32 * PIECE_BITS)) & mask) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_give_the_token_back_and_stay_small() {
        let token = 0xfedc_ba98_7654_3210_u64;
        let pieces = pieces(token);
        assert!(pieces.iter().all(|p| (0.0..16.0).contains(p)));
        let back = pieces.iter().enumerate().fold(0u64, |acc, (i, p)| {
            acc | ((*p as u64) << (i as u32 * PIECE_BITS))
        });
        assert_eq!(back, token);
    }

    #[test]
    fn tokens_differ_with_the_step_and_the_weights() {
        let base = start_token(1, 10, 2, 3);
        assert_eq!(base, start_token(1, 10, 2, 3));
        for other in [
            start_token(2, 10, 2, 3),
            start_token(1, 11, 2, 3),
            start_token(1, 10, 1, 3),
            start_token(1, 10, 2, 4),
        ] {
            assert_ne!(base, other);
        }
    }
}
