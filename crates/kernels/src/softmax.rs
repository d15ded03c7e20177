//! Numerically stable softmax and log-softmax over the last axis, and their derivatives.
//!
//! Each row `x` of length `n = shape[last]` is shifted by its max `m` before exponentiating,
//! so no exponent is positive and nothing overflows: `softmax([1000, 1000]) = [0.5, 0.5]`.
//! - `softmax(x)_i = e^{x_i - m} / s` with `s = Σ e^{x_j - m}` accumulated in f64;
//! - `log_softmax(x)_i = (x_i - m) - ln s`, never forming the (possibly 0) probabilities, so
//!   `log_softmax([-1000, 0]) = [-1000, 0]` exactly.
//!
//! The exponential is the crate's vectorised f32 `exp` (relative error ≤ 1e-6, see
//! [`crate::elementwise`]); the rounding of `x_i - m` adds up to `|x_i - m| · 2^-24` relative
//! error to a probability, as in any f32 softmax. A row with a NaN is all NaN; a row of
//! `-inf` is all NaN (0/0), as in PyTorch.
//!
//! Rows are independent; above a work threshold they are split across the rayon pool, which
//! cannot change any result. A rank-0 shape is one row of one element.

use rayon::prelude::*;

use crate::elementwise::dispatch::{TASK_ELEMS, go_parallel, map1, with_isa};
use crate::elementwise::math;
use crate::error::Result;
use crate::isa::Isa;
use crate::reduce::sum_f64;
use crate::shape::{check_len, check_same_len, numel};

/// Row length (the last dimension; 1 for a scalar) after checking `x.len()` against `shape`.
fn row_len(op: &'static str, shape: &[usize], len: usize) -> Result<usize> {
    check_len(op, "x", len, numel(op, shape)?, shape)?;
    Ok(shape.last().copied().unwrap_or(1))
}

/// Runs `row(x_row, y_row)` for every row, on `isa`, in parallel above the work threshold.
fn rows_on<F>(isa: Isa, n: usize, x: &[f32], y: &mut [f32], row: F)
where
    F: Fn(&[f32], &mut [f32]) + Copy + Send + Sync,
{
    if n == 0 || x.is_empty() {
        return;
    }
    let per_task = TASK_ELEMS.div_ceil(n) * n;
    if go_parallel(x.len()) && x.len() > per_task {
        x.par_chunks(per_task)
            .zip(y.par_chunks_mut(per_task))
            .for_each(|(xc, yc)| {
                with_isa(
                    isa,
                    #[inline(always)]
                    || each_row(n, xc, yc, row),
                )
            });
    } else {
        with_isa(
            isa,
            #[inline(always)]
            || each_row(n, x, y, row),
        );
    }
}

/// Applies `row` to each `n`-element row of `x` and `y`.
#[inline(always)]
fn each_row(n: usize, x: &[f32], y: &mut [f32], row: impl Fn(&[f32], &mut [f32])) {
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        row(xr, yr);
    }
}

/// Max of a row, ignoring NaN (`-inf` for an empty row). A NaN in the row needs no special
/// case: it turns its own `x - m`, hence the row sum, hence every output, into NaN.
#[inline(always)]
fn row_max(x: &[f32]) -> f32 {
    x.iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// Softmax over the last axis of a row-major tensor of `shape`, into `y` of the same length.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape` or `y` differs
/// in length.
pub fn softmax(x: &[f32], shape: &[usize], y: &mut [f32]) -> Result<()> {
    softmax_on(Isa::detect(), x, shape, y)
}

/// [`softmax`] on an explicit instruction set.
///
/// # Errors
/// As [`softmax`], plus [`crate::KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn softmax_on(isa: Isa, x: &[f32], shape: &[usize], y: &mut [f32]) -> Result<()> {
    const OP: &str = "softmax";
    let isa = isa.check()?;
    let n = row_len(OP, shape, x.len())?;
    check_same_len(OP, &[("x", x.len()), ("y", y.len())])?;
    rows_on(
        isa,
        n,
        x,
        y,
        #[inline(always)]
        |x: &[f32], y: &mut [f32]| {
            let m = row_max(x);
            map1(
                x,
                y,
                #[inline(always)]
                |v| math::exp(v - m),
            );
            let r = (1.0 / sum_f64(y)) as f32;
            for v in y.iter_mut() {
                *v *= r;
            }
        },
    );
    Ok(())
}

/// Log-softmax over the last axis: `x - m - ln Σ e^{x - m}` per row, finite wherever the
/// input is (no `ln 0`).
///
/// # Errors
/// As [`softmax`].
pub fn log_softmax(x: &[f32], shape: &[usize], y: &mut [f32]) -> Result<()> {
    log_softmax_on(Isa::detect(), x, shape, y)
}

/// [`log_softmax`] on an explicit instruction set.
///
/// # Errors
/// As [`log_softmax`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn log_softmax_on(isa: Isa, x: &[f32], shape: &[usize], y: &mut [f32]) -> Result<()> {
    const OP: &str = "log_softmax";
    let isa = isa.check()?;
    let n = row_len(OP, shape, x.len())?;
    check_same_len(OP, &[("x", x.len()), ("y", y.len())])?;
    rows_on(
        isa,
        n,
        x,
        y,
        #[inline(always)]
        |x: &[f32], y: &mut [f32]| {
            let m = row_max(x);
            // y is scratch for the exponentials, then overwritten with the answer.
            map1(
                x,
                y,
                #[inline(always)]
                |v| math::exp(v - m),
            );
            let lse = sum_f64(y).ln() as f32;
            map1(
                x,
                y,
                #[inline(always)]
                |v| (v - m) - lse,
            );
        },
    );
    Ok(())
}

/// Derivative of [`softmax`] from its output: `dx = y * (dy - Σ dy·y)` per row, with the dot
/// product accumulated in f64.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y.len()` does not match `shape` or `dy`, `dx`
/// differ in length from `y`.
pub fn softmax_backward(y: &[f32], dy: &[f32], shape: &[usize], dx: &mut [f32]) -> Result<()> {
    const OP: &str = "softmax_backward";
    let n = row_len(OP, shape, y.len())?;
    check_same_len(OP, &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    if n == 0 {
        return Ok(());
    }
    let row = |(yr, dyr): (&[f32], &[f32]), dxr: &mut [f32]| {
        let dot: f64 = yr
            .iter()
            .zip(dyr)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let dot = dot as f32;
        for ((d, &yv), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
            *d = yv * (g - dot);
        }
    };
    backward_rows(n, y, dy, dx, row);
    Ok(())
}

/// Derivative of [`log_softmax`] from its output: `dx = dy - e^y · Σ dy` per row, with the
/// sum accumulated in f64.
///
/// # Errors
/// As [`softmax_backward`].
pub fn log_softmax_backward(y: &[f32], dy: &[f32], shape: &[usize], dx: &mut [f32]) -> Result<()> {
    const OP: &str = "log_softmax_backward";
    let n = row_len(OP, shape, y.len())?;
    check_same_len(OP, &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    if n == 0 {
        return Ok(());
    }
    let row = |(yr, dyr): (&[f32], &[f32]), dxr: &mut [f32]| {
        let total = sum_f64(dyr) as f32;
        for ((d, &yv), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
            *d = g - math::exp(yv) * total;
        }
    };
    backward_rows(n, y, dy, dx, row);
    Ok(())
}

/// Runs a backward `row` over all rows of length `n`, in parallel above the threshold.
fn backward_rows<F>(n: usize, y: &[f32], dy: &[f32], dx: &mut [f32], row: F)
where
    F: Fn((&[f32], &[f32]), &mut [f32]) + Sync,
{
    let per_task = TASK_ELEMS.div_ceil(n) * n;
    let body = |y: &[f32], dy: &[f32], dx: &mut [f32]| {
        for ((yr, dyr), dxr) in y
            .chunks_exact(n)
            .zip(dy.chunks_exact(n))
            .zip(dx.chunks_exact_mut(n))
        {
            row((yr, dyr), dxr);
        }
    };
    if go_parallel(y.len()) && y.len() > per_task {
        y.par_chunks(per_task)
            .zip(dy.par_chunks(per_task))
            .zip(dx.par_chunks_mut(per_task))
            .for_each(|((a, b), c)| body(a, b, c));
    } else {
        body(y, dy, dx);
    }
}
