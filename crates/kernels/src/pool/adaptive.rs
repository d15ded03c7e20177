//! Adaptive average pooling to a fixed output size, and global average pooling.

use rayon::prelude::*;

use super::params::{check_len, invalid, numel};
use super::{Pooled, for_each_plane, go_parallel, plane};
use crate::error::Result;

/// The window `[floor(i*L/out), ceil((i+1)*L/out))` of every output index `i`, PyTorch's
/// `start_index` / `end_index`. Windows cover the input, may overlap, and are never empty.
fn windows(len: usize, out: usize) -> Vec<(usize, usize)> {
    let (l, o) = (len as u128, out as u128);
    (0..o)
        .map(|i| {
            let start = i * l / o;
            let end = ((i + 1) * l).div_ceil(o);
            (start as usize, end as usize)
        })
        .collect()
}

/// The NCHW shape [`adaptive_avg_pool2d`] produces from `input` with `output = (oh, ow)`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if an input or output spatial size is 0 or the
/// element counts overflow `usize`.
pub fn adaptive_output_shape(input: [usize; 4], output: (usize, usize)) -> Result<[usize; 4]> {
    shape_of("adaptive_avg_pool2d", input, output)
}

fn shape_of(op: &'static str, input: [usize; 4], output: (usize, usize)) -> Result<[usize; 4]> {
    if input[2] == 0 || input[3] == 0 {
        return Err(invalid(
            op,
            format!("input {input:?} has an empty spatial dimension"),
        ));
    }
    if output.0 == 0 || output.1 == 0 {
        return Err(invalid(
            op,
            format!("output size {output:?} must be positive in both dimensions"),
        ));
    }
    let shape = [input[0], input[1], output.0, output.1];
    numel(op, input)?;
    numel(op, shape)?;
    Ok(shape)
}

/// Adaptive average pooling (`torch.nn.functional.adaptive_avg_pool2d`) of an NCHW tensor to
/// `output = (oh, ow)`.
///
/// Output `(i, j)` averages rows `[floor(i*H/oh), ceil((i+1)*H/oh))` and columns
/// `[floor(j*W/ow), ceil((j+1)*W/ow))`, so any input size maps onto a fixed output size
/// (e.g. before a classifier). Sums are accumulated in f64. `(1, 1)` takes the
/// [`global_avg_pool2d`] fast path.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if a spatial size is 0 (see
/// [`adaptive_output_shape`]) or `x.len()` does not match `shape`.
pub fn adaptive_avg_pool2d(x: &[f32], shape: [usize; 4], output: (usize, usize)) -> Result<Pooled> {
    const OP: &str = "adaptive_avg_pool2d";
    let out_shape = shape_of(OP, shape, output)?;
    check_len(OP, "x", x.len(), shape)?;
    if output == (1, 1) {
        return global(x, shape);
    }
    let (in_plane, out_plane, width) = (shape[2] * shape[3], output.0 * output.1, shape[3]);
    let rows = windows(shape[2], output.0);
    let cols = windows(shape[3], output.1);
    let mut y = vec![0.0f32; shape[0] * shape[1] * out_plane];
    let work = x.len() + y.len();
    for_each_plane(go_parallel(work), &mut y, out_plane, |p, yp| {
        let xp = plane(x, p, in_plane);
        for (&(r0, r1), yr) in rows.iter().zip(yp.chunks_exact_mut(output.1)) {
            for (&(c0, c1), yv) in cols.iter().zip(yr.iter_mut()) {
                let mut sum = 0.0f64;
                for ih in r0..r1 {
                    for &v in &xp[ih * width + c0..ih * width + c1] {
                        sum += f64::from(v);
                    }
                }
                *yv = (sum / ((r1 - r0) * (c1 - c0)) as f64) as f32;
            }
        }
    });
    Ok(Pooled {
        y,
        shape: out_shape,
    })
}

/// Gradient of [`adaptive_avg_pool2d`]: each output gradient divided by its window's area is
/// added to every input element of the window (overlaps add up in output order).
///
/// `shape` is the forward input shape; `dy` has the forward output's shape `[N, C, oh, ow]`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if a spatial size is 0 or `dy` does not have the
/// output's length.
pub fn adaptive_avg_pool2d_backward(
    dy: &[f32],
    shape: [usize; 4],
    output: (usize, usize),
) -> Result<Vec<f32>> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let out_shape = shape_of(OP, shape, output)?;
    check_len(OP, "dy", dy.len(), out_shape)?;
    if output == (1, 1) {
        return global_backward(dy, shape);
    }
    let (in_plane, out_plane, width) = (shape[2] * shape[3], output.0 * output.1, shape[3]);
    let rows = windows(shape[2], output.0);
    let cols = windows(shape[3], output.1);
    let mut dx = vec![0.0f32; shape[0] * shape[1] * in_plane];
    let work = dx.len() + dy.len();
    for_each_plane(go_parallel(work), &mut dx, in_plane, |p, dxp| {
        let gp = plane(dy, p, out_plane);
        for (&(r0, r1), gr) in rows.iter().zip(gp.chunks_exact(output.1)) {
            for (&(c0, c1), &gv) in cols.iter().zip(gr) {
                let share = gv / ((r1 - r0) * (c1 - c0)) as f32;
                for ih in r0..r1 {
                    for v in &mut dxp[ih * width + c0..ih * width + c1] {
                        *v += share;
                    }
                }
            }
        }
    });
    Ok(dx)
}

/// Global average pooling: the mean of every `(n, c)` plane, shape `[N, C, 1, 1]`. The same
/// as [`adaptive_avg_pool2d`] to `(1, 1)`, without the window bookkeeping.
///
/// Each plane is summed in f64 in index order and divided once, so the result is the
/// correctly rounded mean for all but enormous planes, at any thread count.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `H` or `W` is 0 or `x.len()` does not match
/// `shape`.
pub fn global_avg_pool2d(x: &[f32], shape: [usize; 4]) -> Result<Pooled> {
    const OP: &str = "global_avg_pool2d";
    shape_of(OP, shape, (1, 1))?;
    check_len(OP, "x", x.len(), shape)?;
    global(x, shape)
}

/// Gradient of [`global_avg_pool2d`]: every element of plane `p` gets `dy[p] / (H * W)`.
///
/// `shape` is the forward input shape; `dy` has `N * C` elements.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `H` or `W` is 0 or `dy` does not have `N * C`
/// elements.
pub fn global_avg_pool2d_backward(dy: &[f32], shape: [usize; 4]) -> Result<Vec<f32>> {
    const OP: &str = "global_avg_pool2d_backward";
    let out_shape = shape_of(OP, shape, (1, 1))?;
    check_len(OP, "dy", dy.len(), out_shape)?;
    global_backward(dy, shape)
}

/// [`global_avg_pool2d`] after validation.
fn global(x: &[f32], shape: [usize; 4]) -> Result<Pooled> {
    let in_plane = shape[2] * shape[3];
    let mut y = vec![0.0f32; shape[0] * shape[1]];
    let count = in_plane as f64;
    // One output per plane; the pool splits planes into contiguous runs.
    let parallel = go_parallel(x.len());
    let mean = |p: usize| {
        let sum = plane(x, p, in_plane)
            .iter()
            .fold(0.0f64, |s, &v| s + f64::from(v));
        (sum / count) as f32
    };
    if parallel {
        y.par_iter_mut()
            .enumerate()
            .for_each(|(p, yv)| *yv = mean(p));
    } else {
        y.iter_mut().enumerate().for_each(|(p, yv)| *yv = mean(p));
    }
    Ok(Pooled {
        y,
        shape: [shape[0], shape[1], 1, 1],
    })
}

/// [`global_avg_pool2d_backward`] after validation.
fn global_backward(dy: &[f32], shape: [usize; 4]) -> Result<Vec<f32>> {
    let in_plane = shape[2] * shape[3];
    let mut dx = vec![0.0f32; dy.len() * in_plane];
    let area = in_plane as f32;
    for_each_plane(go_parallel(dx.len()), &mut dx, in_plane, |p, dxp| {
        dxp.fill(dy[p] / area);
    });
    Ok(dx)
}
