//! Reductions along one axis of a contiguous row-major tensor: sum, mean, max, min, argmax,
//! argmin.
//!
//! A tensor of `shape` reduced over `axis` is seen as `[outer, axis_len, inner]`; the output
//! holds `outer * inner` elements in row-major order (the input shape with the axis removed).
//!
//! # Determinism
//! Every output element is computed by a sequence of operations fixed by the shape alone:
//! - Sums accumulate in f64 and round once to f32. Along a contiguous axis (`inner == 1`) the
//!   axis is cut into blocks of [`SUM_BLOCK`] elements, each block is summed in 8 f64 lanes
//!   combined in a fixed tree, and block sums are added in index order. Along a strided axis
//!   each output adds its `axis_len` inputs in index order.
//! - Max/min scan in index order (ties keep the first index).
//!
//! Threads only decide which outputs (or which blocks of one long axis) are computed where,
//! never how, so results are bit-identical for any rayon pool size.
//!
//! NaN handling follows PyTorch: NaN counts as larger (for max) or smaller (for min) than
//! every number, so it propagates, and argmax/argmin return the index of the first NaN.

use rayon::prelude::*;

use crate::elementwise::dispatch::{TASK_ELEMS, go_parallel};
use crate::error::{KernelError, Result};
use crate::shape::{AxisView, check_len};

/// Elements of a contiguous axis summed as one unit before block sums are combined in order;
/// it is also the grain of parallelism when a few very long rows are summed.
pub const SUM_BLOCK: usize = 4096;

/// Columns of `inner` handled by one task when reducing a strided axis.
const INNER_TILE: usize = 1024;

/// Sum of `xs` in f64: eight lanes (element `i` goes to lane `i % 8`), combined pairwise,
/// then the tail in order. Vectorises; the order is fixed by `xs.len()` alone.
#[inline]
pub(crate) fn sum_f64(xs: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in chunks.by_ref() {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f64::from(v);
        }
    }
    let mut tail = 0.0;
    for &v in chunks.remainder() {
        tail += f64::from(v);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Sum of one contiguous row: [`sum_f64`] over [`SUM_BLOCK`]-element blocks, added in order.
/// With `parallel`, blocks are summed on the pool; the result is the same bits either way.
fn row_sum(row: &[f32], parallel: bool) -> f64 {
    if parallel && row.len() > SUM_BLOCK {
        let blocks: Vec<f64> = row.par_chunks(SUM_BLOCK).map(sum_f64).collect();
        blocks.into_iter().fold(0.0, |s, b| s + b)
    } else {
        row.chunks(SUM_BLOCK).map(sum_f64).fold(0.0, |s, b| s + b)
    }
}

/// Sums over the axis into `out`, finishing each f64 total with `finish`.
fn sum_into(
    op: &'static str,
    x: &[f32],
    shape: &[usize],
    axis: usize,
    out: &mut [f32],
    finish: impl Fn(f64) -> f32 + Sync,
) -> Result<()> {
    let v = AxisView::new(op, shape, axis, x.len())?;
    check_len(
        op,
        "out",
        out.len(),
        v.outputs(),
        &reduced_shape(shape, axis),
    )?;
    if out.is_empty() {
        return Ok(());
    }
    if v.axis_len == 0 {
        out.fill(finish(0.0));
        return Ok(());
    }
    let parallel = go_parallel(x.len());
    let slab = v.axis_len * v.inner;
    if v.inner == 1 {
        let rows_per_task = TASK_ELEMS.div_ceil(v.axis_len);
        if parallel && v.outer >= 2 * rows_per_task {
            out.par_chunks_mut(rows_per_task)
                .zip(x.par_chunks(rows_per_task * v.axis_len))
                .for_each(|(o, xs)| {
                    for (o, row) in o.iter_mut().zip(xs.chunks_exact(v.axis_len)) {
                        *o = finish(row_sum(row, false));
                    }
                });
        } else {
            for (o, row) in out.iter_mut().zip(x.chunks_exact(v.axis_len)) {
                *o = finish(row_sum(row, parallel));
            }
        }
        return Ok(());
    }
    // Strided axis: each output column adds its axis_len inputs in order, a tile at a time.
    let tile = |o: usize, t: usize, dst: &mut [f32]| {
        let mut acc = [0.0f64; INNER_TILE];
        let acc = &mut acc[..dst.len()];
        let base = o * slab + t * INNER_TILE;
        for k in 0..v.axis_len {
            let src = &x[base + k * v.inner..][..dst.len()];
            for (a, &s) in acc.iter_mut().zip(src) {
                *a += f64::from(s);
            }
        }
        for (d, &a) in dst.iter_mut().zip(acc.iter()) {
            *d = finish(a);
        }
    };
    for_each_tile(out, v.inner, parallel, tile);
    Ok(())
}

/// Calls `tile(o, t, dst)` for every INNER_TILE-wide tile `t` of every output row `o`.
fn for_each_tile(
    out: &mut [f32],
    inner: usize,
    parallel: bool,
    tile: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    if parallel {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, row)| {
            row.par_chunks_mut(INNER_TILE)
                .enumerate()
                .for_each(|(t, dst)| tile(o, t, dst));
        });
    } else {
        for (o, row) in out.chunks_mut(inner).enumerate() {
            for (t, dst) in row.chunks_mut(INNER_TILE).enumerate() {
                tile(o, t, dst);
            }
        }
    }
}

/// `shape` with `axis` removed, for error messages (the axis is already validated).
fn reduced_shape(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s.remove(axis);
    s
}

/// Sum along `axis`: `out` gets `shape` without the axis (`outer * inner` elements).
/// Accumulates in f64, so the result is within one f32 rounding of the exact sum for any
/// realistic length; an empty axis sums to 0.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if `axis` is out of range, `x.len()` does not match `shape`,
/// or `out` does not have `outer * inner` elements.
pub fn sum(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) -> Result<()> {
    sum_into("sum", x, shape, axis, out, |s| s as f32)
}

/// Mean along `axis`: the f64 [`sum`] divided by the axis length, rounded once. An empty
/// axis gives NaN (0 / 0), as in PyTorch.
///
/// # Errors
/// As [`sum`].
pub fn mean(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) -> Result<()> {
    let n = shape.get(axis).copied().unwrap_or(0) as f64;
    sum_into("mean", x, shape, axis, out, move |s| (s / n) as f32)
}

/// Which end of the order a max/min scan keeps.
#[derive(Clone, Copy)]
enum Extreme {
    Max,
    Min,
}

impl Extreme {
    /// Whether `v` replaces the current best: strictly better, or the first NaN.
    #[inline(always)]
    fn better(self, v: f32, best: f32) -> bool {
        let strictly = match self {
            Extreme::Max => v > best,
            Extreme::Min => v < best,
        };
        strictly || (v.is_nan() && !best.is_nan())
    }
}

/// Max or min along the axis with its first index, into `values` and `indices`.
fn extreme(
    op: &'static str,
    which: Extreme,
    x: &[f32],
    (shape, axis): (&[usize], usize),
    values: &mut [f32],
    indices: &mut [usize],
) -> Result<()> {
    let v = AxisView::new(op, shape, axis, x.len())?;
    let reduced = reduced_shape(shape, axis);
    check_len(op, "values", values.len(), v.outputs(), &reduced)?;
    check_len(op, "indices", indices.len(), v.outputs(), &reduced)?;
    if values.is_empty() {
        return Ok(());
    }
    if v.axis_len == 0 {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!("axis {axis} of shape {shape:?} is empty: there is no {op}"),
        });
    }
    let parallel = go_parallel(x.len());
    let slab = v.axis_len * v.inner;
    // One task: outputs [start, start + vals.len()) of the flat output.
    let task = |start: usize, vals: &mut [f32], idxs: &mut [usize]| {
        if v.inner == 1 {
            for (r, (val, idx)) in vals.iter_mut().zip(idxs.iter_mut()).enumerate() {
                let row = &x[(start + r) * v.axis_len..][..v.axis_len];
                let (mut best, mut at) = (row[0], 0);
                for (k, &e) in row.iter().enumerate().skip(1) {
                    if which.better(e, best) {
                        (best, at) = (e, k);
                    }
                }
                (*val, *idx) = (best, at);
            }
            return;
        }
        // Strided axis; the task lies within one output row (see the chunking below).
        let (o, j0) = (start / v.inner, start % v.inner);
        let base = o * slab + j0;
        vals.copy_from_slice(&x[base..][..vals.len()]);
        idxs.fill(0);
        for k in 1..v.axis_len {
            let src = &x[base + k * v.inner..][..vals.len()];
            for ((best, at), &e) in vals.iter_mut().zip(idxs.iter_mut()).zip(src) {
                if which.better(e, *best) {
                    (*best, *at) = (e, k);
                }
            }
        }
    };
    // Chunk sizes that keep strided tasks inside one output row.
    let chunk = if v.inner == 1 {
        TASK_ELEMS.div_ceil(v.axis_len)
    } else {
        INNER_TILE.min(v.inner)
    };
    if parallel {
        if v.inner == 1 {
            values
                .par_chunks_mut(chunk)
                .zip(indices.par_chunks_mut(chunk))
                .enumerate()
                .for_each(|(c, (vals, idxs))| task(c * chunk, vals, idxs));
        } else {
            values
                .par_chunks_mut(v.inner)
                .zip(indices.par_chunks_mut(v.inner))
                .enumerate()
                .for_each(|(o, (vr, ir))| {
                    vr.par_chunks_mut(chunk)
                        .zip(ir.par_chunks_mut(chunk))
                        .enumerate()
                        .for_each(|(t, (vals, idxs))| task(o * v.inner + t * chunk, vals, idxs));
                });
        }
    } else if v.inner == 1 {
        task(0, values, indices);
    } else {
        for (o, (vr, ir)) in values
            .chunks_mut(v.inner)
            .zip(indices.chunks_mut(v.inner))
            .enumerate()
        {
            for (t, (vals, idxs)) in vr.chunks_mut(chunk).zip(ir.chunks_mut(chunk)).enumerate() {
                task(o * v.inner + t * chunk, vals, idxs);
            }
        }
    }
    Ok(())
}

/// Max along `axis` together with the index where it occurs (`torch.max(x, dim)`): the first
/// index on ties, the first NaN if there is one.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if `axis` is out of range, the axis is empty (there is no
/// max of nothing), `x.len()` does not match `shape`, or `values`/`indices` do not have
/// `outer * inner` elements.
pub fn max_argmax(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    values: &mut [f32],
    indices: &mut [usize],
) -> Result<()> {
    extreme("max", Extreme::Max, x, (shape, axis), values, indices)
}

/// Min along `axis` together with the first index where it occurs; NaN propagates.
///
/// # Errors
/// As [`max_argmax`].
pub fn min_argmin(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    values: &mut [f32],
    indices: &mut [usize],
) -> Result<()> {
    extreme("min", Extreme::Min, x, (shape, axis), values, indices)
}

/// Max along `axis`; NaN propagates.
///
/// # Errors
/// As [`max_argmax`].
pub fn max(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) -> Result<()> {
    let mut idx = vec![0; out.len()];
    extreme("max", Extreme::Max, x, (shape, axis), out, &mut idx)
}

/// Min along `axis`; NaN propagates.
///
/// # Errors
/// As [`max_argmax`].
pub fn min(x: &[f32], shape: &[usize], axis: usize, out: &mut [f32]) -> Result<()> {
    let mut idx = vec![0; out.len()];
    extreme("min", Extreme::Min, x, (shape, axis), out, &mut idx)
}

/// Index of the max along `axis` (`torch.argmax`): the first index on ties, the first NaN if
/// there is one.
///
/// # Errors
/// As [`max_argmax`].
pub fn argmax(x: &[f32], shape: &[usize], axis: usize, out: &mut [usize]) -> Result<()> {
    let mut vals = vec![0.0; out.len()];
    extreme("argmax", Extreme::Max, x, (shape, axis), &mut vals, out)
}

/// Index of the min along `axis`: the first index on ties, the first NaN if there is one.
///
/// # Errors
/// As [`max_argmax`].
pub fn argmin(x: &[f32], shape: &[usize], axis: usize, out: &mut [usize]) -> Result<()> {
    let mut vals = vec![0.0; out.len()];
    extreme("argmin", Extreme::Min, x, (shape, axis), &mut vals, out)
}
