//! Inverted dropout (PyTorch semantics) with masks from a counter-based generator.
//!
//! Element `i` of a mask is kept with probability `1 - p`, and kept elements are scaled by
//! `1 / (1 - p)` so the expected output equals the input and inference needs no rescaling.
//! The random bits for element `i` are output `i` of a SplitMix64 stream seeded with `seed`
//! ([`crate::rng::SplitMix64::output_at`]; Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014).
//! SplitMix64 is a counter hashed by a bijective mixer, so output `i` is computed directly
//! from `seed + (i + 1) · γ` without the outputs before it: a mask is the same bits whether
//! one thread or many generate it, and any chunk can be produced independently.
//!
//! Callers draw a fresh `seed` per step (e.g. from the training RNG); reusing a seed repeats
//! the mask.

use rayon::prelude::*;

use crate::elementwise::dispatch::{TASK_ELEMS, go_parallel};
use crate::error::{KernelError, Result};
use crate::rng::SplitMix64;
use crate::shape::check_same_len;

/// Checks `p` and returns `(threshold, scale)`: element `i` is kept when the high 32 bits of
/// its random word are `>= threshold`, which happens with probability `1 - p` (to within
/// 2^-33), and a kept element is `scale`.
fn keep_rule(op: &'static str, p: f32) -> Result<(u64, f32)> {
    if !(0.0..=1.0).contains(&p) {
        return Err(KernelError::InvalidArgument {
            op,
            detail: format!("dropout probability must be in [0, 1], got {p}"),
        });
    }
    let p = f64::from(p);
    let threshold = (p * 4_294_967_296.0).round() as u64;
    let scale = if p < 1.0 {
        (1.0 / (1.0 - p)) as f32
    } else {
        0.0
    };
    Ok((threshold, scale))
}

/// Fills `mask` with an inverted-dropout mask: each element is `1 / (1 - p)` with
/// probability `1 - p` and `0` otherwise, decided by `seed` and the element's index alone.
///
/// `p == 0` gives all ones, `p == 1` all zeros. The forward pass is `y = x * mask` and the
/// backward pass `dx = dy * mask` (see [`dropout`]).
///
/// # Errors
/// [`KernelError::InvalidArgument`] if `p` is NaN or outside [0, 1].
pub fn dropout_mask(p: f32, seed: u64, mask: &mut [f32]) -> Result<()> {
    let (threshold, scale) = keep_rule("dropout_mask", p)?;
    let fill = |start: usize, chunk: &mut [f32]| {
        for (i, m) in chunk.iter_mut().enumerate() {
            let bits = SplitMix64::output_at(seed, (start + i) as u64) >> 32;
            *m = if bits >= threshold { scale } else { 0.0 };
        }
    };
    if go_parallel(mask.len()) {
        mask.par_chunks_mut(TASK_ELEMS)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * TASK_ELEMS, chunk));
    } else {
        fill(0, mask);
    }
    Ok(())
}

/// Inverted dropout: writes the mask of [`dropout_mask`] into `mask` and `y = x * mask`.
///
/// Keep `mask` for the backward pass, `dx = dy * mask`
/// ([`crate::elementwise::mul`] with equal shapes).
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if `x`, `y` and `mask` differ in length;
/// [`KernelError::InvalidArgument`] if `p` is NaN or outside [0, 1].
pub fn dropout(x: &[f32], p: f32, seed: u64, y: &mut [f32], mask: &mut [f32]) -> Result<()> {
    const OP: &str = "dropout";
    check_same_len(OP, &[("x", x.len()), ("y", y.len()), ("mask", mask.len())])?;
    keep_rule(OP, p)?;
    dropout_mask(p, seed, mask)?;
    for ((yv, &xv), &m) in y.iter_mut().zip(x).zip(mask.iter()) {
        *yv = xv * m;
    }
    Ok(())
}
