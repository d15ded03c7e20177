//! Average pooling forward and backward, with PyTorch's divisor rules.

use super::params::{AvgPool2dParams, Axis, check_len};
use super::{Pooled, for_each_plane, go_parallel, plane};
use crate::error::Result;

/// One average-pool window along one axis: input elements `start..end`, and `padded`, the
/// window's length inside the zero-padded input `[-p, L + p)`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    padded: usize,
}

/// Windows of every output position along `axis`, as PyTorch's CPU kernel forms them:
/// `start = o*s - p`, `end = min(start + k, L + p)`, `padded = end - start`, then both ends
/// are clipped to the input `[0, L)`.
fn spans(axis: Axis, out: usize) -> Vec<Span> {
    let (s, p, k, len) = (
        axis.stride as i128,
        axis.padding as i128,
        axis.kernel as i128,
        axis.len as i128,
    );
    (0..out)
        .map(|o| {
            let start = o as i128 * s - p;
            let end = (start + k).min(len + p);
            let padded = (end - start).max(0) as usize;
            let end = end.clamp(0, len);
            let start = start.clamp(0, end);
            Span {
                start: start as usize,
                end: end as usize,
                padded,
            }
        })
        .collect()
}

/// The divisor of the window `r x c`, or `None` for a window with no input element (its
/// output is 0 and it passes no gradient, as in PyTorch).
#[inline]
fn divisor(params: &AvgPool2dParams, r: Span, c: Span) -> Option<f32> {
    let real = (r.end - r.start) * (c.end - c.start);
    if real == 0 {
        return None;
    }
    let d = match params.divisor_override {
        Some(d) => d,
        None if params.count_include_pad => r.padded * c.padded,
        None => real,
    };
    Some(d as f32)
}

/// Average pooling of an NCHW tensor (`torch.nn.functional.avg_pool2d`).
///
/// Each output is the sum of the input elements in its window divided by the window's
/// divisor: the window area inside the zero-padded input with `count_include_pad` (a
/// `ceil_mode` window hanging past the right padding is clipped), the count of real input
/// elements without it, or `divisor_override` when set. Sums are accumulated in f32 in
/// row-major window order.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if the configuration is invalid for `shape` (see
/// [`AvgPool2dParams::output_shape`]) or `x.len()` does not match `shape`.
pub fn avg_pool2d(x: &[f32], shape: [usize; 4], params: &AvgPool2dParams) -> Result<Pooled> {
    const OP: &str = "avg_pool2d";
    let g = params.geometry(OP, shape)?;
    check_len(OP, "x", x.len(), shape)?;
    let (in_plane, out_plane, width) = (g.in_plane(), g.out_plane(), shape[3]);
    let rows = spans(g.h, g.output[2]);
    let cols = spans(g.w, g.output[3]);
    let mut y = vec![0.0f32; g.planes() * out_plane];
    let work = x.len() + y.len() * params.kernel.0 * params.kernel.1;
    for_each_plane(go_parallel(work), &mut y, out_plane, |p, yp| {
        let xp = plane(x, p, in_plane);
        for (&r, yr) in rows.iter().zip(yp.chunks_exact_mut(cols.len())) {
            for (&c, yv) in cols.iter().zip(yr.iter_mut()) {
                let Some(div) = divisor(params, r, c) else {
                    *yv = 0.0;
                    continue;
                };
                let mut sum = 0.0f32;
                for ih in r.start..r.end {
                    for &v in &xp[ih * width + c.start..ih * width + c.end] {
                        sum += v;
                    }
                }
                *yv = sum / div;
            }
        }
    });
    Ok(Pooled { y, shape: g.output })
}

/// Gradient of [`avg_pool2d`]: every output gradient divided by its window's divisor is
/// added to each input element of the window (overlapping windows add up, in output order,
/// so the result does not depend on the thread count).
///
/// `shape` is the forward input shape; `dy` has the forward output's shape.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if the configuration is invalid for `shape` or `dy`
/// does not have the output's length.
pub fn avg_pool2d_backward(
    dy: &[f32],
    shape: [usize; 4],
    params: &AvgPool2dParams,
) -> Result<Vec<f32>> {
    const OP: &str = "avg_pool2d_backward";
    let g = params.geometry(OP, shape)?;
    check_len(OP, "dy", dy.len(), g.output)?;
    let (in_plane, out_plane, width) = (g.in_plane(), g.out_plane(), shape[3]);
    let rows = spans(g.h, g.output[2]);
    let cols = spans(g.w, g.output[3]);
    let mut dx = vec![0.0f32; g.planes() * in_plane];
    let work = dx.len() + dy.len() * params.kernel.0 * params.kernel.1;
    for_each_plane(go_parallel(work), &mut dx, in_plane, |p, dxp| {
        let gp = plane(dy, p, out_plane);
        for (&r, gr) in rows.iter().zip(gp.chunks_exact(cols.len())) {
            for (&c, &gv) in cols.iter().zip(gr) {
                let Some(div) = divisor(params, r, c) else {
                    continue;
                };
                let share = gv / div;
                for ih in r.start..r.end {
                    for v in &mut dxp[ih * width + c.start..ih * width + c.end] {
                        *v += share;
                    }
                }
            }
        }
    });
    Ok(dx)
}
