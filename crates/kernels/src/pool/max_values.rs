//! Max pooling forward without indices, for inference: nothing will scatter a gradient
//! back, so the argmax (an i64 per output, which kept the indexed loop from vectorising)
//! is never computed.

use std::cell::Cell;

use super::max::{tap_ranges, taps};
use super::params::{Axis, MaxPool2dParams, check_len};
use super::{Pooled, for_each_plane, go_parallel, plane};
use crate::error::Result;

/// The values of [`super::max_pool2d`] (bit for bit, including which NaN or which signed
/// zero is reported) without its indices.
///
/// # Errors
/// As [`super::max_pool2d`].
pub fn max_pool2d_values(x: &[f32], shape: [usize; 4], params: &MaxPool2dParams) -> Result<Pooled> {
    let output = params.geometry("max_pool2d", shape)?.output;
    let mut y = vec![0.0f32; output.iter().product()];
    max_pool2d_values_into(x, shape, params, &mut y)?;
    Ok(Pooled { y, shape: output })
}

/// [`max_pool2d_values`] into a caller-owned `y` of the output's length (every element is
/// overwritten). Returns the output shape.
///
/// # Errors
/// As [`super::max_pool2d`], and [`crate::KernelError::ShapeMismatch`] if `y` does not have
/// the output's length.
pub fn max_pool2d_values_into(
    x: &[f32],
    shape: [usize; 4],
    params: &MaxPool2dParams,
    y: &mut [f32],
) -> Result<[usize; 4]> {
    const OP: &str = "max_pool2d";
    let g = params.geometry(OP, shape)?;
    check_len(OP, "x", x.len(), shape)?;
    check_len(OP, "y", y.len(), g.output)?;
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    let columns = Columns {
        axis: g.w,
        ranges: tap_ranges(g.w, g.output[3]),
    };
    let rows = taps(g.h, g.output[2]);
    let work = x.len() * params.kernel.1 + y.len() * params.kernel.0;
    for_each_plane(go_parallel(work), y, out_plane, |p, yp| {
        let xp = plane(x, p, in_plane);
        // Each input row's maximum over every output column's taps, then each output row's
        // maximum over its rows' maxima.
        let ow = g.output[3];
        let (mut across, mut phased) = SCRATCH.take();
        across.clear();
        across.resize(g.h.len * ow, f32::NEG_INFINITY);
        phased.resize(g.w.len, 0.0);
        for (xr, ar) in xp.chunks_exact(g.w.len).zip(across.chunks_exact_mut(ow)) {
            columns.pool_row(xr, ar, &mut phased);
        }
        for (yr, rt) in yp.chunks_exact_mut(ow).zip(&rows) {
            yr.fill(f32::NEG_INFINITY);
            for ih in (rt.first..rt.end).step_by(g.h.dilation) {
                for (yv, &v) in yr.iter_mut().zip(&across[ih * ow..(ih + 1) * ow]) {
                    *yv = take_max(*yv, v);
                }
            }
        }
        SCRATCH.set((across, phased));
    });
    Ok(g.output)
}

thread_local! {
    /// A plane's row maxima and one phase-split input row, kept between planes and calls.
    static SCRATCH: Cell<(Vec<f32>, Vec<f32>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// The column axis and, per kernel column, the output columns whose tap lands inside the input.
struct Columns {
    axis: Axis,
    ranges: Vec<(usize, usize)>,
}

impl Columns {
    /// `out[o]` becomes the maximum of `row` over output column `o`'s taps, in tap order
    /// (`-inf` where it has none). With stride `s > 1` the row is first split into its `s`
    /// phases (columns `≡ q mod s`, in `phased`) so every tap reads contiguous memory.
    fn pool_row(&self, row: &[f32], out: &mut [f32], phased: &mut [f32]) {
        let (s, d, p) = (self.axis.stride, self.axis.dilation, self.axis.padding);
        let len = row.len();
        // Phase `q` holds columns q, q + s, …; it starts after the earlier phases.
        let phase_len = |q: usize| (len + s - 1 - q) / s;
        if s > 1 {
            let mut at = 0;
            for q in 0..s {
                let n = phase_len(q);
                for (dst, &v) in phased[at..at + n]
                    .iter_mut()
                    .zip(row.iter().skip(q).step_by(s))
                {
                    *dst = v;
                }
                at += n;
            }
        }
        for (kj, &(lo, hi)) in self.ranges.iter().enumerate() {
            if lo >= hi {
                continue;
            }
            // Input column of output `o` for this tap: `o*s + kj*d - p`.
            let first = lo * s + kj * d - p;
            let xs = if s > 1 {
                let start = (0..first % s).map(phase_len).sum::<usize>() + first / s;
                &phased[start..start + hi - lo]
            } else {
                &row[first..first + hi - lo]
            };
            for (o, &v) in out[lo..hi].iter_mut().zip(xs) {
                *o = take_max(*o, v);
            }
        }
    }
}

/// PyTorch's running-maximum rule: `v` replaces `best` if larger or NaN, so ties keep the
/// earlier tap and the last NaN wins. Taking rows' maxima of columns' maxima in that order
/// keeps the first maximum in row-major window order, as the indexed kernel does.
#[inline(always)]
fn take_max(best: f32, v: f32) -> f32 {
    if v > best || v.is_nan() { v } else { best }
}
