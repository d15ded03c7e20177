//! Normalisation over the channel axis of `[N, C, *]` f32 tensors, forward and backward, with
//! PyTorch's semantics.
//!
//! - Batch normalisation ([`batch_norm_train`], [`batch_norm_eval`] and their backward
//!   passes): per-channel statistics over the batch and spatial positions, optional affine
//!   weight and bias, running statistics updated in place like `torch.nn.BatchNorm2d`.
//! - Batch normalisation followed by ReLU in training ([`batch_norm_relu_train`],
//!   [`batch_norm_relu_backward_train`]): the same statistics and bits as
//!   [`batch_norm_train`] then `relu`, in one pass over memory each way.
//! - Local response normalisation ([`local_response_norm`],
//!   [`local_response_norm_backward`]): `torch.nn.LocalResponseNorm` across channels.
//!
//! A tensor of shape `[N, C, d2, d3, …]` (rank ≥ 2) is seen as `N * C` contiguous planes of
//! `inner = d2 * d3 * …` elements; plane `p` belongs to sample `p / C` and channel `p % C`.
//!
//! # Threads and determinism
//! Above [`PARALLEL_MIN_WORK`] elements, planes are spread over the current rayon pool.
//! Per-channel reductions are computed as one f64 partial sum per `(n, c)` plane, in index
//! order, and the partials of a channel are added in order of `n` on the calling thread, so
//! every result is bit-identical for any thread count.
//!
//! ```
//! use ventral_kernels::norm::{batch_norm_train, BatchNormParams, RunningStats};
//!
//! // N = 2, C = 1, one element per plane: the channel holds [1, 3], mean 2, variance 1.
//! let (mut mean, mut var) = ([0.0], [1.0]);
//! let running = RunningStats { mean: &mut mean, var: &mut var };
//! let out = batch_norm_train(&[1.0, 3.0], &[2, 1], None, None, Some(running), BatchNormParams::new(0.0, 0.1))?;
//! assert_eq!(out.y, [-1.0, 1.0]);
//! assert_eq!(mean, [0.2]); // 0.9 * 0 + 0.1 * 2
//! assert_eq!(var, [1.1]); // 0.9 * 1 + 0.1 * 2 (unbiased variance: 2 / (2 - 1))
//! # Ok::<(), ventral_kernels::KernelError>(())
//! ```

mod batch;
mod batch_relu;
mod lrn;

use std::mem::MaybeUninit;

use rayon::prelude::*;

pub use batch::{
    BatchNormGrads, BatchNormParams, BatchNormTrainOutput, RunningStats, batch_norm_backward_eval,
    batch_norm_backward_train, batch_norm_eval, batch_norm_train,
};
pub use batch_relu::{
    batch_norm_relu_backward_train, batch_norm_relu_backward_train_on, batch_norm_relu_train,
    batch_norm_relu_train_on,
};
pub use lrn::{LrnParams, local_response_norm, local_response_norm_backward};

use crate::error::{KernelError, Result};

/// Below this many elements a normalisation stays on the calling thread: waking another
/// thread costs more than the work.
pub const PARALLEL_MIN_WORK: usize = 1 << 15;

/// A validated `[N, C, *]` tensor seen as `n * c` planes of `inner` elements.
#[derive(Debug, Clone, Copy)]
struct Planes {
    n: usize,
    c: usize,
    inner: usize,
}

impl Planes {
    /// Validates `shape` (rank ≥ 2, element count fits `usize`) and that the slice `what` has
    /// its `len` elements.
    fn new(op: &'static str, shape: &[usize], what: &str, len: usize) -> Result<Self> {
        if shape.len() < 2 {
            return Err(mismatch(
                op,
                format!("shape {shape:?} must be [N, C, ...] with rank at least 2"),
            ));
        }
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                mismatch(
                    op,
                    format!("shape {shape:?} has more elements than fit in usize"),
                )
            })?;
        if len != numel {
            return Err(mismatch(
                op,
                format!("{what} has {len} elements, but shape {shape:?} needs {numel}"),
            ));
        }
        Ok(Self {
            n: shape[0],
            c: shape[1],
            inner: shape[2..].iter().product(),
        })
    }

    /// Total elements.
    fn numel(self) -> usize {
        self.n * self.c * self.inner
    }

    /// Whether there is no element at all (then no plane needs visiting).
    fn is_empty(self) -> bool {
        self.numel() == 0
    }

    /// Whether work on this tensor should use the rayon pool.
    fn parallel(self) -> bool {
        self.numel() > PARALLEL_MIN_WORK && rayon::current_num_threads() > 1
    }

    /// Plane `p` of `x`.
    fn plane(self, x: &[f32], p: usize) -> &[f32] {
        &x[p * self.inner..(p + 1) * self.inner]
    }

    /// `f(p)` for every plane index, collected in index order (in parallel when large).
    fn map<T: Send>(self, f: impl Fn(usize) -> T + Send + Sync) -> Vec<T> {
        let planes = self.n * self.c;
        if self.is_empty() {
            Vec::new()
        } else if self.parallel() {
            (0..planes).into_par_iter().map(f).collect()
        } else {
            (0..planes).map(f).collect()
        }
    }

    /// `f(p, out_plane)` for every plane of `out` (in parallel when large).
    fn fill(self, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Send + Sync) {
        if self.is_empty() {
            return;
        }
        if self.parallel() {
            out.par_chunks_mut(self.inner)
                .enumerate()
                .for_each(|(p, o)| f(p, o));
        } else {
            out.chunks_mut(self.inner)
                .enumerate()
                .for_each(|(p, o)| f(p, o));
        }
    }

    /// A new tensor's worth of floats, plane `p` written by `f(p, plane)` (in parallel when
    /// large). `f` must write every element of the plane it is given; the buffer is not
    /// cleared first (clearing it was a pass over memory as long as the map itself).
    fn fill_new(self, f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Send + Sync) -> Vec<f32> {
        let n = self.numel();
        let mut out: Vec<f32> = Vec::with_capacity(n);
        if n > 0 {
            let planes = &mut out.spare_capacity_mut()[..n];
            if self.parallel() {
                planes
                    .par_chunks_mut(self.inner)
                    .enumerate()
                    .for_each(|(p, o)| f(p, o));
            } else {
                planes
                    .chunks_mut(self.inner)
                    .enumerate()
                    .for_each(|(p, o)| f(p, o));
            }
        }
        // SAFETY: the planes cover the first n elements of the capacity, and `f` wrote every
        // element of each (its contract; a panic in `f` never reaches this line).
        unsafe { out.set_len(n) };
        out
    }

    /// `f(p, a_plane, b_plane)` for every plane of two outputs (in parallel when large).
    fn fill2(
        self,
        a: &mut [f32],
        b: &mut [f32],
        f: impl Fn(usize, &mut [f32], &mut [f32]) + Send + Sync,
    ) {
        if self.is_empty() {
            return;
        }
        if self.parallel() {
            a.par_chunks_mut(self.inner)
                .zip(b.par_chunks_mut(self.inner))
                .enumerate()
                .for_each(|(p, (ap, bp))| f(p, ap, bp));
        } else {
            a.chunks_mut(self.inner)
                .zip(b.chunks_mut(self.inner))
                .enumerate()
                .for_each(|(p, (ap, bp))| f(p, ap, bp));
        }
    }

    /// Per-channel totals of per-plane partials: `out[c] = Σ_n partials[n * C + c]`, added in
    /// order of `n` (the fixed order that makes reductions thread-count independent).
    fn per_channel<const K: usize>(self, partials: &[[f64; K]]) -> Vec<[f64; K]> {
        let mut out = vec![[0.0f64; K]; self.c];
        for sample in partials.chunks_exact(self.c.max(1)) {
            for (acc, part) in out.iter_mut().zip(sample) {
                for (a, &v) in acc.iter_mut().zip(part) {
                    *a += v;
                }
            }
        }
        out
    }
}

/// `Σ_i term(i)` over `0..len` for `K` sums at once, in f64. Index `i` goes to lane `i % 8`
/// for the multiple-of-8 prefix, the lanes are combined in a fixed tree, then the tail is
/// added: eight independent chains instead of one, and an order fixed by `len` alone.
///
/// `chunk(base)` gives the terms of `base..base + 8` at once, sum by sum (`chunk(base)[k][l]`
/// is `term(base + l)[k]`), so the prefix runs as whole vectors of f64: with one term an
/// index the loop compiled to scalar conversions and adds, and a batch norm's statistics
/// took longer than its memory traffic.
#[inline(always)]
fn sum_lanes<const K: usize>(
    len: usize,
    chunk: impl Fn(usize) -> [[f64; 8]; K],
    term: impl Fn(usize) -> [f64; K],
) -> [f64; K] {
    let mut acc = [[0.0f64; 8]; K];
    let full = len / 8 * 8;
    for base in (0..full).step_by(8) {
        let terms = chunk(base);
        for (a, t) in acc.iter_mut().zip(&terms) {
            for (al, &tl) in a.iter_mut().zip(t) {
                *al += tl;
            }
        }
    }
    let mut tail = [0.0f64; K];
    for i in full..len {
        for (t, v) in tail.iter_mut().zip(term(i)) {
            *t += v;
        }
    }
    std::array::from_fn(|k| {
        let a = |l: usize| acc[k][l];
        ((a(0) + a(4)) + (a(1) + a(5))) + ((a(2) + a(6)) + (a(3) + a(7))) + tail[k]
    })
}

/// The 8 floats of `x` from `base`, widened to f64.
#[inline(always)]
fn widen8(x: &[f32], base: usize) -> [f64; 8] {
    let v: &[f32; 8] = x[base..base + 8].try_into().expect("8 floats");
    v.map(f64::from)
}

/// Checks that the per-channel slice `what` has `c` elements.
fn check_channels(op: &'static str, what: &str, len: usize, c: usize) -> Result<()> {
    if len == c {
        Ok(())
    } else {
        Err(mismatch(
            op,
            format!("{what} has {len} elements, but the input has {c} channels"),
        ))
    }
}

/// A [`KernelError::ShapeMismatch`] for `op`.
#[cold]
fn mismatch(op: &'static str, detail: String) -> KernelError {
    KernelError::ShapeMismatch { op, detail }
}
