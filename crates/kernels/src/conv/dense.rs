//! Convolutions over images with fewer input pixels than the kernel has taps (VGG-11
//! (CIFAR)'s 512 -> 512 layers on 2x2 maps): the whole convolution is one dense matrix.
//!
//! Lowering such an image (im2col) copies every pixel into up to `kh x kw` rows, most of them
//! padding zeros: a 3x3 kernel over a 2x2 map with padding 1 sees only 4 of its 9 taps at
//! each position, so 5/9 of the lowered products multiply zeros. Instead, with `Q` input
//! pixels and `P` output positions per image, the layer is the dense `C Q x K P` matrix
//!
//! ```text
//! D[(c, q), (k, p)] = w[k, c, tap]   where input pixel q is under tap `tap` of position p,
//!                     0              where no tap of p covers q,
//! ```
//!
//! and an NCHW batch is already the row-major `N x C Q` matrix it multiplies: `y = x D`,
//! `dx = dy D^T` and `dD = x^T dy`, three plain GEMMs of `Q / (kh kw)` the lowered work
//! (4/9 on 2x2 maps), with no lowering. `dw` gathers `dD`'s entries back to their taps, each
//! summed over its (q, p) pairs in a fixed order. Only `D^T` is built (each row reads one
//! output channel's kernels front to back; the forward pass reads it transposed): one write
//! of its `C Q K P` floats per call, small against the products from a batch of a few
//! images.

use std::sync::Mutex;

use rayon::prelude::*;

use super::Conv2dGeometry;
use crate::error::Result;
use crate::gemm::{MatMut, MatRef, gemm_on};
use crate::isa::Isa;
use crate::spare::{give_back, take_fitting};

/// The most floats of `D` the path builds (32 MiB): 16 MiB for VGG-11's 512 -> 512 layer on
/// 2x2 maps.
pub(super) const DENSE_MAX_FLOATS: usize = 1 << 23;

/// Images from which the planner takes this path: `D` holds `Q / (kh kw)` as many floats
/// as there are lowered products per image, so with a batch of one it costs as much memory
/// traffic as the product itself.
pub(super) const DENSE_MIN_BATCH: usize = 8;

/// Whether the dense matrix can compute the passes of `g`: one group, fewer input pixels
/// than taps, and `D` within [`DENSE_MAX_FLOATS`].
pub(super) fn serves(g: &Conv2dGeometry) -> bool {
    let taps = g.kernel_h * g.kernel_w;
    g.params.groups == 1
        && g.in_channels > 0
        && g.out_channels > 0
        && g.positions() > 0
        && g.plane() > 0
        && g.plane() < taps
        && (g.in_channels * g.plane())
            .checked_mul(g.out_channels * g.positions())
            .is_some_and(|floats| floats <= DENSE_MAX_FLOATS)
}

/// For each output position `p` (row-major), the pairs `(q, tap)` of the input pixels `q`
/// its kernel covers and the tap that covers each: at most one per pixel, since each tap
/// reads a distinct pixel.
fn taps_by_position(g: &Conv2dGeometry) -> Vec<Vec<(usize, usize)>> {
    let p = g.params;
    let mut taps = Vec::with_capacity(g.positions());
    for (oh, ow) in (0..g.out_h).flat_map(|oh| (0..g.out_w).map(move |ow| (oh, ow))) {
        let mut pairs = Vec::new();
        for (i, j) in (0..g.kernel_h).flat_map(|i| (0..g.kernel_w).map(move |j| (i, j))) {
            let ih = (oh * p.stride.0 + i * p.dilation.0).checked_sub(p.padding.0);
            let iw = (ow * p.stride.1 + j * p.dilation.1).checked_sub(p.padding.1);
            if let (Some(ih), Some(iw)) = (ih, iw)
                && ih < g.in_h
                && iw < g.in_w
            {
                pairs.push((ih * g.in_w + iw, i * g.kernel_w + j));
            }
        }
        taps.push(pairs);
    }
    taps
}

/// A spare buffer for `D^T` or `dD^T`, kept between calls: a fresh one costs a page fault
/// per 4 KiB.
static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// `D^T` (`K P x C Q`, row-major) of `w`, for [`forward_with_matrix`] calls on the same
/// weights (inference, where it is built once instead of every call).
pub(super) fn prepare(g: &Conv2dGeometry, w: &[f32]) -> Vec<f32> {
    dense_matrix_t(g, w, Vec::new())
}

/// The floats of `D`.
fn dense_len(g: &Conv2dGeometry) -> usize {
    g.in_channels * g.plane() * g.out_channels * g.positions()
}

/// `D^T` (`K P x C Q`, row-major) in `d_t`, resized; every element is written. Each row
/// `(k, p)` reads kernel row `k` of `w` front to back; rows are built side by side.
fn dense_matrix_t(g: &Conv2dGeometry, w: &[f32], mut d_t: Vec<f32>) -> Vec<f32> {
    let (c_in, plane, positions) = (g.in_channels, g.plane(), g.positions());
    let taps = taps_by_position(g);
    let kernel = g.kernel_h * g.kernel_w;
    d_t.resize(dense_len(g), 0.0);
    d_t.par_chunks_mut(c_in * plane)
        .enumerate()
        .for_each(|(row, out)| {
            let (k, p) = (row / positions, row % positions);
            let pairs = &taps[p];
            let kernels = &w[k * c_in * kernel..][..c_in * kernel];
            for (pixels, taps) in out
                .chunks_exact_mut(plane)
                .zip(kernels.chunks_exact(kernel))
            {
                if pairs.len() < plane {
                    pixels.fill(0.0);
                }
                for &(q, t) in pairs {
                    pixels[q] = taps[t];
                }
            }
        });
    d_t
}

/// `y = conv(x, w) + bias` as `x D` (lengths checked by the caller, [`serves`] holds).
pub(super) fn forward(
    isa: Isa,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let d_t = dense_matrix_t(g, w, take_fitting(&SPARE, dense_len(g)));
    forward_with_matrix(isa, g, x, &d_t, bias, y)?;
    give_back(&SPARE, [d_t], 1);
    Ok(())
}

/// `y = x D + bias` on `d_t` = `D^T` from [`prepare`] (lengths checked by the caller,
/// [`serves`] holds).
pub(super) fn forward_with_matrix(
    isa: Isa,
    g: &Conv2dGeometry,
    x: &[f32],
    d_t: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let (rows, cols) = (g.in_channels * g.plane(), g.out_channels * g.positions());
    gemm_on(
        isa,
        1.0,
        MatRef::row_major(x, g.batch, rows)?,
        MatRef::row_major(d_t, cols, rows)?.t(),
        0.0,
        MatMut::row_major(y, g.batch, cols)?,
    )?;
    if let Some(b) = bias {
        for (plane, &b) in y.chunks_exact_mut(g.positions()).zip(b.iter().cycle()) {
            for v in plane {
                *v += b;
            }
        }
    }
    Ok(())
}

/// `dx = dy D^T` (lengths checked by the caller, [`serves`] holds).
pub(super) fn input_gradient(
    isa: Isa,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let (rows, cols) = (g.out_channels * g.positions(), g.in_channels * g.plane());
    let d_t = dense_matrix_t(g, w, take_fitting(&SPARE, dense_len(g)));
    gemm_on(
        isa,
        1.0,
        MatRef::row_major(dy, g.batch, rows)?,
        MatRef::row_major(&d_t, rows, cols)?,
        0.0,
        MatMut::row_major(dx, g.batch, cols)?,
    )?;
    give_back(&SPARE, [d_t], 1);
    Ok(())
}

/// `dw` from `dD^T = dy^T x` (`K P x C Q`): each tap of each kernel sums its entries over the
/// output positions in order (lengths checked by the caller, [`serves`] holds).
pub(super) fn weight_gradient(
    isa: Isa,
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    let (c_in, k_out, plane, positions) = (g.in_channels, g.out_channels, g.plane(), g.positions());
    let (rows, cols) = (k_out * positions, c_in * plane);
    let mut d_t = take_fitting(&SPARE, rows * cols);
    d_t.resize(rows * cols, 0.0);
    gemm_on(
        isa,
        1.0,
        MatRef::row_major(dy, g.batch, rows)?.t(),
        MatRef::row_major(x, g.batch, cols)?,
        0.0,
        MatMut::row_major(&mut d_t, rows, cols)?,
    )?;
    let taps = taps_by_position(g);
    let kernel = g.kernel_h * g.kernel_w;
    dw.par_chunks_mut(c_in * kernel)
        .enumerate()
        .for_each(|(k, dw_k)| {
            dw_k.fill(0.0);
            for (p, pairs) in taps.iter().enumerate() {
                let row = &d_t[(k * positions + p) * cols..][..cols];
                for (dw_c, pixels) in dw_k.chunks_exact_mut(kernel).zip(row.chunks_exact(plane)) {
                    for &(q, t) in pairs {
                        dw_c[t] += pixels[q];
                    }
                }
            }
        });
    give_back(&SPARE, [d_t], 1);
    Ok(())
}
