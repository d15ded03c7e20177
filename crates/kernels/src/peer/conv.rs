//! The convolution peer of `ventral bench conv` and the criterion conv bench: explicit
//! lowering (im2col, col2im) around matrixmultiply's sgemm, as Caffe and PyTorch's
//! `slow_conv2d` compute a convolution.
//!
//! Images are lowered a chunk at a time into a `[K, images · P]` column matrix (`K = C·KH·KW`
//! taps, `P = OH·OW` output positions; at most [`COL_FLOATS`] floats), so each chunk is one
//! GEMM large enough for matrixmultiply's threads:
//!
//! - forward: im2col, `Y = W · col` into `[O, images · P]`, copied to NCHW with the bias added;
//! - input gradient: `dy` copied to `[O, images · P]`, `col = Wᵀ · dy`, col2im adds the
//!   columns back into `dx`;
//! - weight gradient: im2col and the same copy of `dy`, `dW (+)= dy · colᵀ` over chunks.
//!
//! The loops are plain safe Rust (this module forbids `unsafe`), spread over the rayon pool
//! (the threads Ventral gets); every buffer is allocated once, in [`LoweredConv::new`].
#![forbid(unsafe_code)]

use rayon::prelude::*;

use super::matrixmultiply_gemm;
use crate::conv::{Conv2d, Conv2dGeometry, Pass};
use crate::error::{KernelError, Result};
use crate::gemm::{MatMut, MatRef};

/// Most floats of lowered input one chunk holds: 16 MiB.
pub const COL_FLOATS: usize = 1 << 22;

/// The operands every pass reads from: input, weight, optional bias and output gradient.
#[derive(Debug, Clone, Copy)]
pub struct PassInputs<'a> {
    /// `x`, NCHW.
    pub x: &'a [f32],
    /// `w`, `[O, C, KH, KW]`.
    pub w: &'a [f32],
    /// The forward pass's bias, `[O]`.
    pub bias: Option<&'a [f32]>,
    /// `dy`, the shape of the output.
    pub dy: &'a [f32],
}

/// Runs `pass` of Ventral's convolution `conv` into `out` (overwritten), so that a benchmark
/// calls Ventral and [`LoweredConv::run`] the same way.
///
/// # Errors
/// The convolution's own, for slices of the wrong length.
pub fn run_ventral(conv: &Conv2d, pass: Pass, i: &PassInputs<'_>, out: &mut [f32]) -> Result<()> {
    match pass {
        Pass::Forward => conv.forward(i.x, i.w, i.bias, out),
        Pass::InputGradient => conv.backward_input(i.dy, i.w, out),
        Pass::WeightGradient => conv.backward_weight(i.x, i.dy, out),
    }
}

/// A convolution of fixed geometry computed by lowering and matrixmultiply.
pub struct LoweredConv {
    g: Conv2dGeometry,
    /// Images per chunk.
    chunk: usize,
    /// `[K, chunk · P]`: the lowered input, or the input gradient's columns.
    col: Vec<f32>,
    /// `[O, chunk · P]`: the forward GEMM's output, or `dy` in GEMM layout.
    out: Vec<f32>,
}

impl LoweredConv {
    /// The peer for `g` (one group, the layers benchmarked here).
    ///
    /// # Errors
    /// [`KernelError::InvalidArgument`] if `g` has more than one group.
    pub fn new(g: &Conv2dGeometry) -> Result<Self> {
        if g.params.groups != 1 {
            return Err(KernelError::InvalidArgument {
                op: "LoweredConv",
                detail: format!("handles one group, not {}", g.params.groups),
            });
        }
        let (k, p) = (taps(g), g.out_h * g.out_w);
        let chunk = (COL_FLOATS / (k * p)).clamp(1, g.batch);
        Ok(Self {
            g: *g,
            chunk,
            col: vec![0.0; k * chunk * p],
            out: vec![0.0; g.out_channels * chunk * p],
        })
    }

    /// `y = conv(x, w) + bias`, all NCHW / OIHW row-major as Ventral's kernel.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn forward(
        &mut self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        let g = self.g;
        check(&[
            ("x", x.len(), g.input_shape()),
            ("w", w.len(), g.weight_shape()),
            ("y", y.len(), g.output_shape()),
            (
                "bias",
                bias.map_or(g.out_channels, <[f32]>::len),
                [g.out_channels, 1, 1, 1],
            ),
        ])?;
        let (k, p, o) = (taps(&g), g.out_h * g.out_w, g.out_channels);
        for n0 in (0..g.batch).step_by(self.chunk) {
            let images = self.chunk.min(g.batch - n0);
            let cols = images * p;
            let col = &mut self.col[..k * cols];
            im2col(&g, x, n0, images, col);
            let out = &mut self.out[..o * cols];
            gemm(
                MatRef::row_major(w, o, k).expect("sized"),
                MatRef::row_major(col, k, cols).expect("sized"),
                0.0,
                MatMut::row_major(out, o, cols).expect("sized"),
            );
            let out = &*out;
            y[n0 * o * p..(n0 + images) * o * p]
                .par_chunks_mut(o * p)
                .enumerate()
                .for_each(|(i, yi)| {
                    for (c, yc) in yi.chunks_mut(p).enumerate() {
                        let b = bias.map_or(0.0, |b| b[c]);
                        let from = &out[c * cols + i * p..][..p];
                        for (v, &s) in yc.iter_mut().zip(from) {
                            *v = s + b;
                        }
                    }
                });
        }
        Ok(())
    }

    /// Runs `pass` into `out` (overwritten): [`LoweredConv::forward`],
    /// [`LoweredConv::backward_input`] or [`LoweredConv::backward_weight`].
    ///
    /// # Errors
    /// Theirs, for slices of the wrong length.
    pub fn run(&mut self, pass: Pass, i: &PassInputs<'_>, out: &mut [f32]) -> Result<()> {
        match pass {
            Pass::Forward => self.forward(i.x, i.w, i.bias, out),
            Pass::InputGradient => self.backward_input(i.dy, i.w, out),
            Pass::WeightGradient => self.backward_weight(i.x, i.dy, out),
        }
    }

    /// `dx` from `dy` and `w` (overwritten).
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn backward_input(&mut self, dy: &[f32], w: &[f32], dx: &mut [f32]) -> Result<()> {
        let g = self.g;
        check(&[
            ("dy", dy.len(), g.output_shape()),
            ("w", w.len(), g.weight_shape()),
            ("dx", dx.len(), g.input_shape()),
        ])?;
        let (k, p, o) = (taps(&g), g.out_h * g.out_w, g.out_channels);
        let image = g.in_channels * g.in_h * g.in_w;
        for n0 in (0..g.batch).step_by(self.chunk) {
            let images = self.chunk.min(g.batch - n0);
            let cols = images * p;
            let dyc = &mut self.out[..o * cols];
            to_gemm_layout(dy, o * p, p, n0, images, dyc);
            let col = &mut self.col[..k * cols];
            gemm(
                MatRef::row_major(w, o, k).expect("sized").t(),
                MatRef::row_major(dyc, o, cols).expect("sized"),
                0.0,
                MatMut::row_major(col, k, cols).expect("sized"),
            );
            col2im(&g, col, images, &mut dx[n0 * image..(n0 + images) * image]);
        }
        Ok(())
    }

    /// `dw` from `x` and `dy` (overwritten).
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn backward_weight(&mut self, x: &[f32], dy: &[f32], dw: &mut [f32]) -> Result<()> {
        let g = self.g;
        check(&[
            ("x", x.len(), g.input_shape()),
            ("dy", dy.len(), g.output_shape()),
            ("dw", dw.len(), g.weight_shape()),
        ])?;
        let (k, p, o) = (taps(&g), g.out_h * g.out_w, g.out_channels);
        for n0 in (0..g.batch).step_by(self.chunk) {
            let images = self.chunk.min(g.batch - n0);
            let cols = images * p;
            let col = &mut self.col[..k * cols];
            im2col(&g, x, n0, images, col);
            let dyc = &mut self.out[..o * cols];
            to_gemm_layout(dy, o * p, p, n0, images, dyc);
            gemm(
                MatRef::row_major(dyc, o, cols).expect("sized"),
                MatRef::row_major(col, k, cols).expect("sized").t(),
                if n0 == 0 { 0.0 } else { 1.0 },
                MatMut::row_major(dw, o, k).expect("sized"),
            );
        }
        Ok(())
    }
}

/// Each `(name, length, shape)` must have the shape's element count.
fn check(slices: &[(&str, usize, [usize; 4])]) -> Result<()> {
    for &(name, len, shape) in slices {
        let want: usize = shape.iter().product();
        if len != want {
            return Err(KernelError::ShapeMismatch {
                op: "LoweredConv",
                detail: format!("{name} has {len} elements, but shape {shape:?} needs {want}"),
            });
        }
    }
    Ok(())
}

/// `K = C · KH · KW`, the rows of the lowered matrix.
fn taps(g: &Conv2dGeometry) -> usize {
    g.in_channels * g.kernel_h * g.kernel_w
}

fn gemm(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    matrixmultiply_gemm(1.0, a, b, beta, c).expect("shapes agree");
}

/// The input position tap `kk` of output `o` reads along one axis, if inside the input.
fn source(
    o: usize,
    kk: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    len: usize,
) -> Option<usize> {
    (o * stride + kk * dilation)
        .checked_sub(pad)
        .filter(|&i| i < len)
}

/// The output positions `lo..hi` (of `out`) whose tap `kk` lands inside the input along one
/// axis, and the input position of `lo`: `o · stride + kk · dilation - pad` grows with `o`, so
/// they are one run, read `stride` apart.
fn inside(
    out: usize,
    kk: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    len: usize,
) -> (usize, usize, usize) {
    let offset = kk * dilation;
    let lo = pad.saturating_sub(offset).div_ceil(stride).min(out);
    // o · stride + offset - pad < len  <=>  o < (len + pad - offset) / stride, rounded up.
    let hi = (len + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .clamp(lo, out);
    (lo, hi, (lo * stride + offset).saturating_sub(pad))
}

/// Lowers images `n0..n0 + images` of `x`: row `(c, kh, kw)` of `col` holds, for each image
/// and output position, the input that tap reads (0 in the padding).
fn im2col(g: &Conv2dGeometry, x: &[f32], n0: usize, images: usize, col: &mut [f32]) {
    let (p, (sh, sw), (ph, pw), (dh, dw)) = (
        g.out_h * g.out_w,
        g.params.stride,
        g.params.padding,
        g.params.dilation,
    );
    let (kh_n, kw_n, hw) = (g.kernel_h, g.kernel_w, g.in_h * g.in_w);
    col.par_chunks_mut(images * p)
        .enumerate()
        .for_each(|(row, out)| {
            let (c, kh, kw) = (row / (kh_n * kw_n), row / kw_n % kh_n, row % kw_n);
            let (lo, hi, iw0) = inside(g.out_w, kw, sw, dw, pw, g.in_w);
            for (i, oi) in out.chunks_mut(p).enumerate() {
                let plane = &x[((n0 + i) * g.in_channels + c) * hw..][..hw];
                for (oh, orow) in oi.chunks_mut(g.out_w).enumerate() {
                    let Some(ih) = source(oh, kh, sh, dh, ph, g.in_h) else {
                        orow.fill(0.0);
                        continue;
                    };
                    let src = &plane[ih * g.in_w..][..g.in_w];
                    orow[..lo].fill(0.0);
                    orow[hi..].fill(0.0);
                    let run = &mut orow[lo..hi];
                    if sw == 1 {
                        run.copy_from_slice(&src[iw0..iw0 + run.len()]);
                    } else {
                        for (v, &x) in run.iter_mut().zip(src[iw0..].iter().step_by(sw)) {
                            *v = x;
                        }
                    }
                }
            }
        });
}

/// Adds the columns of `images` images back (the adjoint of [`im2col`]) into `dx`, those
/// images' input gradient, which it zeroes first.
fn col2im(g: &Conv2dGeometry, col: &[f32], images: usize, dx: &mut [f32]) {
    let (p, (sh, sw), (ph, pw), (dh, dw)) = (
        g.out_h * g.out_w,
        g.params.stride,
        g.params.padding,
        g.params.dilation,
    );
    let (kh_n, kw_n, hw) = (g.kernel_h, g.kernel_w, g.in_h * g.in_w);
    let cols = images * p;
    // One task per (image, channel) plane: planes are disjoint, each summed in a fixed order.
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane, dxp)| {
        let (i, c) = (plane / g.in_channels, plane % g.in_channels);
        dxp.fill(0.0);
        for kh in 0..kh_n {
            for kw in 0..kw_n {
                let row = &col[((c * kh_n + kh) * kw_n + kw) * cols + i * p..][..p];
                let (lo, hi, iw0) = inside(g.out_w, kw, sw, dw, pw, g.in_w);
                for (oh, grow) in row.chunks(g.out_w).enumerate() {
                    let Some(ih) = source(oh, kh, sh, dh, ph, g.in_h) else {
                        continue;
                    };
                    let target = &mut dxp[ih * g.in_w..][..g.in_w];
                    let run = &grow[lo..hi];
                    for (t, &v) in target[iw0..].iter_mut().step_by(sw).zip(run) {
                        *t += v;
                    }
                }
            }
        }
    });
}

/// Copies images `n0..n0 + images` of an NCHW tensor with `per_image` floats, planes of `p`,
/// into the GEMM layout `[C, images · p]`.
fn to_gemm_layout(
    t: &[f32],
    per_image: usize,
    p: usize,
    n0: usize,
    images: usize,
    out: &mut [f32],
) {
    out.par_chunks_mut(images * p)
        .enumerate()
        .for_each(|(c, row)| {
            for (i, dst) in row.chunks_mut(p).enumerate() {
                dst.copy_from_slice(&t[(n0 + i) * per_image + c * p..][..p]);
            }
        });
}

/// `max |a - b| / max |b|`: the largest difference relative to the largest value.
pub fn normwise_difference(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let worst = a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| {
        m.max((f64::from(x) - f64::from(y)).abs())
    });
    if scale == 0.0 { worst } else { worst / scale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{Conv2d, Conv2dParams};

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // A fixed, sign-varying pattern with no two neighbours equal.
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Each pass of the peer equals Ventral's (checked against plain references in its own
    /// tests) on strided, padded, dilated layers whose batch spans several chunks.
    #[test]
    fn peer_matches_ventral() {
        for (input, weight, params) in [
            (
                [3, 2, 9, 8],
                [4, 2, 3, 3],
                Conv2dParams::default().padding(1),
            ),
            (
                [2, 3, 11, 10],
                [5, 3, 3, 2],
                Conv2dParams::default().stride(2).padding(2).dilation(2),
            ),
            // AlexNet's first layer in small: stride 4, padding 2, windows past the edge.
            (
                [2, 3, 23, 21],
                [4, 3, 11, 11],
                Conv2dParams::default().stride(4).padding(2),
            ),
        ] {
            let conv = Conv2d::new(input, weight, params).unwrap();
            let g = *conv.geometry();
            let len = |s: [usize; 4]| s.iter().product::<usize>();
            let (x, w) = (values(len(input), 1), values(len(weight), 2));
            let (b, dy) = (values(weight[0], 3), values(len(g.output_shape()), 4));
            let mut peer = LoweredConv::new(&g).unwrap();
            peer.chunk = 1; // several chunks, so the weight gradient accumulates across them
            let (mut y0, mut y1) = (vec![0.0; dy.len()], vec![9.0; dy.len()]);
            conv.forward(&x, &w, Some(&b), &mut y0).unwrap();
            peer.forward(&x, &w, Some(&b), &mut y1).unwrap();
            assert!(normwise_difference(&y1, &y0) < 1e-6, "forward");
            let (mut d0, mut d1) = (vec![0.0; x.len()], vec![9.0; x.len()]);
            conv.backward_input(&dy, &w, &mut d0).unwrap();
            peer.backward_input(&dy, &w, &mut d1).unwrap();
            assert!(normwise_difference(&d1, &d0) < 1e-6, "input gradient");
            let (mut w0, mut w1) = (vec![0.0; w.len()], vec![9.0; w.len()]);
            conv.backward_weight(&x, &dy, &mut w0).unwrap();
            peer.backward_weight(&x, &dy, &mut w1).unwrap();
            assert!(normwise_difference(&w1, &w0) < 1e-6, "weight gradient");
            assert!(matches!(
                peer.forward(&x, &w, Some(&b), &mut y1[1..]),
                Err(KernelError::ShapeMismatch { .. })
            ));
        }
    }
}
