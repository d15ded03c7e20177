//! Max pooling forward (values and argmax indices) and backward (scatter through indices).

use rayon::prelude::*;

use super::params::{Axis, MaxPool2dParams, check_len, invalid};
use super::{MaxPooled, for_each_plane, go_parallel, plane};
use crate::error::Result;

/// The taps of one window along one axis: `first, first + dilation, …` while `< end`.
/// `first == end` for a window that holds no input element.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taps {
    pub(super) first: usize,
    pub(super) end: usize,
}

/// Windows of every output position along `axis`, clipped to the input as PyTorch does:
/// `start = o*s - p`, `end = min(start + (k-1)*d + 1, L)`, then `start` steps by `d` until it
/// is inside the input (padding taps are skipped, never read).
pub(super) fn taps(axis: Axis, out: usize) -> Vec<Taps> {
    let (s, p, d) = (
        axis.stride as i128,
        axis.padding as i128,
        axis.dilation as i128,
    );
    let span = d * (axis.kernel as i128 - 1) + 1;
    (0..out)
        .map(|o| {
            let start = o as i128 * s - p;
            let end = (start + span).min(axis.len as i128).max(0);
            let first = if start < 0 {
                start + (-start + d - 1) / d * d
            } else {
                start
            };
            Taps {
                first: first.min(end) as usize,
                end: end as usize,
            }
        })
        .collect()
}

/// Max pooling of an NCHW tensor (`torch.nn.functional.max_pool2d(..., return_indices=True)`).
///
/// Each output is the largest input in its window; padding taps are never candidates. Ties
/// keep the first element in row-major window order, and a NaN wins over every number (the
/// last NaN in the window is reported), exactly as PyTorch's CPU kernel. `indices` hold the
/// flat position `ih * W + iw` of each maximum inside its own `(n, c)` plane, which is what
/// [`max_pool2d_backward`] needs.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if the configuration is invalid for `shape` (see
/// [`MaxPool2dParams::output_shape`]) or `x.len()` does not match `shape`.
pub fn max_pool2d(x: &[f32], shape: [usize; 4], params: &MaxPool2dParams) -> Result<MaxPooled> {
    let output = params.geometry("max_pool2d", shape)?.output;
    let len = output.iter().product();
    let (mut y, mut indices) = (vec![0.0f32; len], vec![0i64; len]);
    max_pool2d_into(x, shape, params, &mut y, &mut indices)?;
    Ok(MaxPooled {
        y,
        indices,
        shape: output,
    })
}

/// [`max_pool2d`] into caller-owned buffers `y` and `indices` of the output's length (every
/// element is overwritten), for callers that reuse them across calls. Returns the output
/// shape.
///
/// # Errors
/// As [`max_pool2d`], and [`crate::KernelError::ShapeMismatch`] if `y` or `indices` does not
/// have the output's length.
pub fn max_pool2d_into(
    x: &[f32],
    shape: [usize; 4],
    params: &MaxPool2dParams,
    y: &mut [f32],
    indices: &mut [i64],
) -> Result<[usize; 4]> {
    const OP: &str = "max_pool2d";
    let g = params.geometry(OP, shape)?;
    check_len(OP, "x", x.len(), shape)?;
    check_len(OP, "y", y.len(), g.output)?;
    check_len(OP, "indices", indices.len(), g.output)?;
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    let rows = taps(g.h, g.output[2]);
    let cols = taps(g.w, g.output[3]);
    let col_ranges = tap_ranges(g.w, g.output[3]);
    let (s, len) = (g.w.stride, g.w.len);
    let phase_at: Vec<usize> = (0..s)
        .map(|q| (0..q).map(|p| (len + s - 1 - p) / s).sum())
        .collect();
    let plan = Plan {
        h: g.h,
        w: g.w,
        rows: &rows,
        cols: &cols,
        col_ranges: &col_ranges,
        phase_at: &phase_at,
    };
    let work = x.len() + y.len() * params.kernel.0 * params.kernel.1;
    // Non-overlapping 2x2 windows that all lie inside the input (LeNet-5, VGG): a direct loop.
    let pairs = params.kernel == (2, 2)
        && params.stride == (2, 2)
        && params.padding == (0, 0)
        && params.dilation == (1, 1)
        && 2 * g.output[2] <= g.h.len
        && 2 * g.output[3] <= g.w.len;
    let run = |p: usize, yp: &mut [f32], ip: &mut [i64]| {
        let xp = plane(x, p, in_plane);
        if pairs {
            max_plane_2x2(xp, g.w.len, yp, ip, g.output[3]);
        } else {
            max_plane(&plan, xp, yp, ip);
        }
    };
    if y.is_empty() {
        // No planes: nothing to pool.
    } else if go_parallel(work) {
        y.par_chunks_mut(out_plane)
            .zip(indices.par_chunks_mut(out_plane))
            .enumerate()
            .for_each(|(p, (yp, ip))| run(p, yp, ip));
    } else {
        y.chunks_mut(out_plane)
            .zip(indices.chunks_mut(out_plane))
            .enumerate()
            .for_each(|(p, (yp, ip))| run(p, yp, ip));
    }
    Ok(g.output)
}

/// For each kernel column `kj`, the output columns `lo..hi` whose tap `kj` lands inside the
/// input (a contiguous range, since the tap position `o*s + kj*d - p` grows with `o`).
pub(super) fn tap_ranges(axis: Axis, out: usize) -> Vec<(usize, usize)> {
    (0..axis.kernel)
        .map(|kj| {
            let inside = |o: usize| {
                let at = o * axis.stride + kj * axis.dilation;
                at >= axis.padding && at - axis.padding < axis.len
            };
            let lo = (0..out).find(|&o| inside(o)).unwrap_or(out);
            let hi = (lo..out).find(|&o| !inside(o)).unwrap_or(out);
            (lo, hi)
        })
        .collect()
}

/// Per-call constants of the max-pool plane loop.
struct Plan<'a> {
    h: Axis,
    w: Axis,
    rows: &'a [Taps],
    cols: &'a [Taps],
    col_ranges: &'a [(usize, usize)],
    /// Where phase `q` (columns `q, q + s, …`) of a phase-split input row starts.
    phase_at: &'a [usize],
}

/// One plane of [`max_pool2d`]: `x` is `H x W`, `y` and `idx` are `OH x OW`.
///
/// Tap-major: for each output row, every kernel tap `(ki, kj)` in row-major window order
/// updates all the output columns it reaches. Each output still sees its taps in row-major
/// window order, so ties and NaN resolve exactly as in a per-window scan. With a column
/// stride `s > 1` each input row is first split into its `s` phases (columns `≡ q mod s`), so
/// every tap reads contiguous memory and the update loop vectorises.
fn max_plane(plan: &Plan<'_>, x: &[f32], y: &mut [f32], idx: &mut [i64]) {
    let (h, w) = (plan.h, plan.w);
    let ow = plan.cols.len();
    let s = w.stride;
    // Phase `q` of a row holds columns q, q + s, …, starting at `phase_at[q]`.
    let phase_at = plan.phase_at;
    let mut phased = vec![0.0f32; if s > 1 { w.len } else { 0 }];
    for (r, (yr, ir)) in y
        .chunks_exact_mut(ow)
        .zip(idx.chunks_exact_mut(ow))
        .enumerate()
    {
        // PyTorch starts each window from its first in-bounds tap with value -inf, so an
        // all `-inf` window reports that tap; a window with no input element reports -1.
        let rt = plan.rows[r];
        for ((yv, iv), ct) in yr.iter_mut().zip(ir.iter_mut()).zip(plan.cols) {
            *yv = f32::NEG_INFINITY;
            *iv = if rt.first < rt.end && ct.first < ct.end {
                (rt.first * w.len + ct.first) as i64
            } else {
                -1
            };
        }
        for ki in 0..h.kernel {
            let at = r * h.stride + ki * h.dilation;
            if at < h.padding || at - h.padding >= h.len {
                continue;
            }
            let ih = at - h.padding;
            let xrow = &x[ih * w.len..(ih + 1) * w.len];
            if s > 1 {
                for q in 0..s {
                    let dst = &mut phased[phase_at[q]..];
                    for (d, &v) in dst.iter_mut().zip(xrow.iter().skip(q).step_by(s)) {
                        *d = v;
                    }
                }
            }
            for (kj, &(lo, hi)) in plan.col_ranges.iter().enumerate() {
                if lo >= hi {
                    continue;
                }
                // Input column of output `o` for this tap: `o*s + kj*d - p`, in bounds
                // for `o` in `lo..hi`.
                let first = lo * s + kj * w.dilation - w.padding;
                let base = (ih * w.len + first) as i64;
                let (ys, is) = (&mut yr[lo..hi], &mut ir[lo..hi]);
                let xs = if s > 1 {
                    let start = phase_at[first % s] + first / s;
                    &phased[start..start + ys.len()]
                } else {
                    &xrow[first..first + ys.len()]
                };
                let step = s as i64;
                for (k, ((yv, iv), &v)) in ys.iter_mut().zip(is.iter_mut()).zip(xs).enumerate() {
                    update(yv, iv, v, base + k as i64 * step);
                }
            }
        }
    }
}

/// [`max_plane`] for 2x2 windows at stride 2 that all lie inside the `width`-wide input:
/// each output reads its two input rows directly, its taps in the same row-major order (so
/// ties and NaN resolve the same way). The general plane loop spent most of its time
/// splitting every input row into its two column phases.
fn max_plane_2x2(x: &[f32], width: usize, y: &mut [f32], idx: &mut [i64], ow: usize) {
    for (r, (yr, ir)) in y
        .chunks_exact_mut(ow)
        .zip(idx.chunks_exact_mut(ow))
        .enumerate()
    {
        let (top, bottom) = (2 * r * width, (2 * r + 1) * width);
        let (xt, xb) = (&x[top..][..2 * ow], &x[bottom..][..2 * ow]);
        for (c, ((yv, iv), (t, b))) in yr
            .iter_mut()
            .zip(ir.iter_mut())
            .zip(xt.chunks_exact(2).zip(xb.chunks_exact(2)))
            .enumerate()
        {
            let (at_top, at_bottom) = ((top + 2 * c) as i64, (bottom + 2 * c) as i64);
            let (mut best, mut at) = (f32::NEG_INFINITY, at_top);
            update(&mut best, &mut at, t[0], at_top);
            update(&mut best, &mut at, t[1], at_top + 1);
            update(&mut best, &mut at, b[0], at_bottom);
            update(&mut best, &mut at, b[1], at_bottom + 1);
            *yv = best;
            *iv = at;
        }
    }
}

/// One tap of a max-pool window: take `v` (from flat index `at`) if it beats the running
/// maximum or is NaN (PyTorch's rule: ties keep the earlier tap, the last NaN wins). The
/// selects are marked unpredictable so the scalar remainder uses conditional moves, not
/// branches that random data mispredicts; the main loop vectorises into blends.
#[inline(always)]
fn update(y: &mut f32, i: &mut i64, v: f32, at: i64) {
    let better = (v > *y) | v.is_nan();
    *y = std::hint::select_unpredictable(better, v, *y);
    *i = std::hint::select_unpredictable(better, at, *i);
}

/// Gradient of [`max_pool2d`]: each output gradient is added to the input element its
/// index points at (gradients of overlapping windows that picked the same element add up);
/// every other input gets 0. Indices of `-1` contribute nothing.
///
/// `shape` is the forward input shape; `dy` and `indices` have the forward output's shape.
/// Within a plane, gradients are added in output order, so the result does not depend on the
/// thread count.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if the configuration is invalid for `shape`, if `dy`
/// or `indices` do not have the output's length, or if an index lies outside its plane.
pub fn max_pool2d_backward(
    dy: &[f32],
    indices: &[i64],
    shape: [usize; 4],
    params: &MaxPool2dParams,
) -> Result<Vec<f32>> {
    let g = params.geometry("max_pool2d_backward", shape)?;
    let mut dx = vec![0.0f32; g.planes() * g.in_plane()];
    max_pool2d_backward_into(dy, indices, shape, params, &mut dx)?;
    Ok(dx)
}

/// [`max_pool2d_backward`] into a caller-owned `dx` of the input's length, which it zeroes
/// first (its previous contents never leak into the result), for callers that reuse it
/// across calls.
///
/// # Errors
/// As [`max_pool2d_backward`], and [`crate::KernelError::ShapeMismatch`] if `dx` does not
/// have the input's length.
pub fn max_pool2d_backward_into(
    dy: &[f32],
    indices: &[i64],
    shape: [usize; 4],
    params: &MaxPool2dParams,
    dx: &mut [f32],
) -> Result<()> {
    const OP: &str = "max_pool2d_backward";
    let g = params.geometry(OP, shape)?;
    check_len(OP, "dx", dx.len(), shape)?;
    check_len(OP, "dy", dy.len(), g.output)?;
    check_len(OP, "indices", indices.len(), g.output)?;
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    if let Some(bad) = indices.iter().position(|&i| i < -1 || i >= in_plane as i64) {
        return Err(invalid(
            OP,
            format!(
                "indices[{bad}] = {} is outside a {}x{} input plane",
                indices[bad], shape[2], shape[3]
            ),
        ));
    }
    let work = dx.len() + dy.len();
    for_each_plane(go_parallel(work), dx, in_plane, |p, dxp| {
        dxp.fill(0.0);
        let gp = plane(dy, p, out_plane);
        let ip = &indices[p * out_plane..(p + 1) * out_plane];
        for (&gv, &i) in gp.iter().zip(ip) {
            if i >= 0 {
                dxp[i as usize] += gv;
            }
        }
    });
    Ok(())
}
