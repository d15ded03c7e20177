//! Binary arithmetic with NumPy broadcasting, and the reduction that undoes a broadcast.
//!
//! The broadcast iteration first removes size-1 dimensions and merges neighbouring dimensions
//! that both operands step through contiguously (or both repeat), so `[5, 4] + [4]` becomes a
//! 5-row loop over rows of 4, and `[1000, 1000] + [1000, 1000]` one flat loop. The innermost
//! merged dimension is a row in which each operand either advances by one element or repeats
//! one value; each such row runs through the vectorised loops of [`super::dispatch`].

use rayon::prelude::*;

use super::dispatch::{self, TASK_ELEMS, go_parallel, with_isa};
use crate::error::Result;
use crate::isa::Isa;
use crate::shape::{broadcast_shape, check_len, numel};

/// A broadcast iteration space after merging dimensions.
struct Layout {
    /// Merged output dimensions except the innermost, outermost first.
    outer_dims: Vec<usize>,
    /// Element strides of `a` and `b` for each outer dimension (0 where it repeats).
    outer_strides: Vec<(usize, usize)>,
    /// Length of the innermost merged dimension.
    row: usize,
    /// Whether `a` and `b` advance (stride 1) or repeat (stride 0) along a row.
    step: (bool, bool),
}

impl Layout {
    /// Builds the merged layout for `a` and `b` broadcast to `out` (already validated).
    fn new(out: &[usize], a: &[usize], b: &[usize]) -> Layout {
        // (size, stride in a, stride in b), innermost first, with size-1 dimensions dropped.
        let mut dims: Vec<(usize, usize, usize)> = Vec::with_capacity(out.len());
        let (mut sa, mut sb) = (1usize, 1usize);
        for i in (0..out.len()).rev() {
            let da = aligned(a, out.len(), i);
            let db = aligned(b, out.len(), i);
            let size = out[i];
            let stride_a = if da == 1 { 0 } else { sa };
            let stride_b = if db == 1 { 0 } else { sb };
            sa *= da;
            sb *= db;
            if size == 1 {
                continue;
            }
            match dims.last_mut() {
                // Merge into the inner neighbour when both operands continue its progression.
                Some((n, ia, ib)) if stride_a == *ia * *n && stride_b == *ib * *n => *n *= size,
                _ => dims.push((size, stride_a, stride_b)),
            }
        }
        let (row, ia, ib) = dims.first().copied().unwrap_or((1, 0, 0));
        let rest = dims.get(1..).unwrap_or(&[]);
        Layout {
            outer_dims: rest.iter().rev().map(|d| d.0).collect(),
            outer_strides: rest.iter().rev().map(|d| (d.1, d.2)).collect(),
            row,
            step: (ia != 0, ib != 0),
        }
    }

    /// Offsets into `a` and `b` of the first element of output row `r`.
    fn row_offsets(&self, mut r: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for (&n, &(sa, sb)) in self.outer_dims.iter().zip(&self.outer_strides).rev() {
            let i = r % n;
            r /= n;
            oa += i * sa;
            ob += i * sb;
        }
        (oa, ob)
    }
}

/// Dimension `i` of `shape` left-padded with 1s to `rank`.
fn aligned(shape: &[usize], rank: usize, i: usize) -> usize {
    let pad = rank - shape.len();
    if i < pad { 1 } else { shape[i - pad] }
}

/// Fills `out`, which holds whole output rows starting at row `first_row`.
#[inline(always)]
fn run_rows<F>(layout: &Layout, a: &[f32], b: &[f32], out: &mut [f32], first_row: usize, f: F)
where
    F: Fn(f32, f32) -> f32 + Copy,
{
    let n = layout.row;
    for (r, o) in out.chunks_exact_mut(n).enumerate() {
        let (oa, ob) = layout.row_offsets(first_row + r);
        match layout.step {
            (true, true) => dispatch::map2(&a[oa..oa + n], &b[ob..ob + n], o, f),
            (true, false) => {
                let bv = b[ob];
                dispatch::map1(
                    &a[oa..oa + n],
                    o,
                    #[inline(always)]
                    |av| f(av, bv),
                );
            }
            (false, true) => {
                let av = a[oa];
                dispatch::map1(
                    &b[ob..ob + n],
                    o,
                    #[inline(always)]
                    |bv| f(av, bv),
                );
            }
            (false, false) => o.fill(f(a[oa], b[ob])),
        }
    }
}

/// Validates shapes and runs `out = f(a, b)` with broadcasting on `isa`.
fn binary_on<F>(
    isa: Isa,
    op: &'static str,
    (a, a_shape): (&[f32], &[usize]),
    (b, b_shape): (&[f32], &[usize]),
    out: &mut [f32],
    f: F,
) -> Result<()>
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    let isa = isa.check()?;
    let shape = broadcast_shape(op, a_shape, b_shape)?;
    check_len(op, "a", a.len(), numel(op, a_shape)?, a_shape)?;
    check_len(op, "b", b.len(), numel(op, b_shape)?, b_shape)?;
    check_len(op, "out", out.len(), numel(op, &shape)?, &shape)?;
    if out.is_empty() {
        return Ok(());
    }
    if a_shape == b_shape {
        dispatch::par_map2(isa, a, b, out, f);
        return Ok(());
    }
    let layout = Layout::new(&shape, a_shape, b_shape);
    let row = layout.row;
    if go_parallel(out.len()) {
        // Whole rows per task, at least TASK_ELEMS elements.
        let rows_per_task = TASK_ELEMS.div_ceil(row);
        out.par_chunks_mut(rows_per_task * row)
            .enumerate()
            .for_each(|(t, chunk)| {
                let first = t * rows_per_task;
                with_isa(
                    isa,
                    #[inline(always)]
                    || run_rows(&layout, a, b, chunk, first, f),
                );
            });
    } else {
        with_isa(
            isa,
            #[inline(always)]
            || run_rows(&layout, a, b, out, 0, f),
        );
    }
    Ok(())
}

macro_rules! binary_op {
    ($name:ident, $name_on:ident, $sym:literal, $what:literal, |$x:ident, $y:ident| $body:expr) => {
        #[doc = concat!("`out = a ", $sym, " b` ", $what, ", with NumPy broadcasting")]
        /// on the default instruction set.
        ///
        /// `a` and `b` are row-major tensors of shapes `a_shape` and `b_shape`; `out` must hold
        /// the broadcast shape's elements ([`crate::shape::broadcast_shape`] computes it). The
        /// backward pass is elementwise arithmetic followed by [`sum_to_shape`] for each
        /// operand that was broadcast.
        ///
        /// # Errors
        /// [`crate::KernelError::ShapeMismatch`], naming the op and both shapes, if the shapes
        /// cannot broadcast or a slice length does not match its shape.
        pub fn $name(
            a: &[f32],
            a_shape: &[usize],
            b: &[f32],
            b_shape: &[usize],
            out: &mut [f32],
        ) -> Result<()> {
            $name_on(Isa::detect(), a, a_shape, b, b_shape, out)
        }

        #[doc = concat!("[`", stringify!($name), "`] on an explicit instruction set.")]
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($name), "`], plus")]
        /// [`crate::KernelError::UnsupportedIsa`].
        pub fn $name_on(
            isa: Isa,
            a: &[f32],
            a_shape: &[usize],
            b: &[f32],
            b_shape: &[usize],
            out: &mut [f32],
        ) -> Result<()> {
            let op = stringify!($name);
            binary_on(
                isa,
                op,
                (a, a_shape),
                (b, b_shape),
                out,
                #[inline(always)]
                |$x: f32, $y: f32| $body,
            )
        }
    };
}

binary_op!(add, add_on, "+", "(sum)", |x, y| x + y);
binary_op!(sub, sub_on, "-", "(difference)", |x, y| x - y);
binary_op!(mul, mul_on, "*", "(product)", |x, y| x * y);
binary_op!(
    div,
    div_on,
    "/",
    "(IEEE quotient: `x / 0` is ±inf or NaN)",
    |x, y| x / y
);

/// Sums a gradient of shape `grad_shape` down to `shape`, the shape of an operand that was
/// broadcast up to `grad_shape`: the backward pass of broadcasting.
///
/// Every output element is the sum, in f64 and in an order fixed by the two shapes alone, of
/// the gradient elements it was broadcast to, rounded once to f32; the result therefore does
/// not depend on the thread count. Runs on the calling thread.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `shape` does not broadcast to exactly
/// `grad_shape`, or a slice length does not match its shape.
pub fn sum_to_shape(
    grad: &[f32],
    grad_shape: &[usize],
    shape: &[usize],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "sum_to_shape";
    let full = broadcast_shape(OP, shape, grad_shape)?;
    if full != grad_shape {
        return Err(crate::KernelError::ShapeMismatch {
            op: OP,
            detail: format!("shape {shape:?} does not broadcast to gradient shape {grad_shape:?}"),
        });
    }
    check_len(OP, "grad", grad.len(), numel(OP, grad_shape)?, grad_shape)?;
    check_len(OP, "out", out.len(), numel(OP, shape)?, shape)?;
    if grad.is_empty() {
        out.fill(0.0);
        return Ok(());
    }
    // `a` is the gradient itself, `b` the operand: b's strides say where each element lands.
    let layout = Layout::new(grad_shape, grad_shape, shape);
    let mut acc = vec![0.0f64; out.len()];
    let n = layout.row;
    for (r, g) in grad.chunks_exact(n).enumerate() {
        let (_, ob) = layout.row_offsets(r);
        if layout.step.1 {
            for (s, &v) in acc[ob..ob + n].iter_mut().zip(g) {
                *s += f64::from(v);
            }
        } else {
            acc[ob] += g.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
    }
    for (o, s) in out.iter_mut().zip(acc) {
        *o = s as f32;
    }
    Ok(())
}
