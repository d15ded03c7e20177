//! The input gradient of narrow stride-1 layers with few input channels per group (LeNet-5's
//! second layer) on AVX-512: a direct convolution with one input row per zmm register.
//!
//! `dx[c, ih, iw]` sums `w[o, c, ki, kj] * dy[o, ih + ph - ki, iw + pw - kj]` over the output
//! channels and taps. For one input row `ih`, one output channel `o` and one tap, the `dy`
//! values of the whole row are a contiguous run of the output-gradient row `ih + ph - ki`,
//! shifted by `kj`: one unaligned load from a copy of that row with zeros on both sides. A block
//! keeps the row of every input channel of the group in registers and adds each loaded run
//! times the tap's weight for each channel, broadcast from memory. Nothing goes through a
//! column buffer (the GEMM path spent 40 % of its time adding 10-wide rows back, col2im).
//! Every element sums its terms in a fixed order whatever the thread count.

use rayon::prelude::*;

use super::Conv2d;
#[cfg(doc)]
use super::ConvPath;

/// Floats of one zmm register: the widest input row served.
pub(super) const LANES: usize = 16;

/// Most input channels per group whose rows stay in registers at once.
pub(super) const MAX_CHANNELS: usize = 12;

impl Conv2d {
    /// `dx = conv_transpose(dy, w)` one input row per register (see the module docs),
    /// overwriting `dx`; the caller has checked [`ConvPath::InputRows`] serves the pass
    /// and the slice lengths.
    pub(super) fn backward_input_rows(&self, dy: &[f32], w: &[f32], dx: &mut [f32]) {
        let g = &self.geometry;
        let (ph, pw) = g.params.padding;
        let (kh, kw) = (g.kernel_h, g.kernel_w);
        // An output-gradient row sits at `left` in a zeroed row of `span` floats, so that the
        // run for tap kj starts at `left + pw - kj >= 0` and its 16 floats end inside.
        let left = kw - 1;
        let span = (left + pw + LANES).max(left + g.out_w);
        let shape = Shape {
            channels: g.group_in(),
            outputs: g.group_out(),
            kernel: (kh, kw),
            out_h: g.out_h,
            pad_h: ph,
            start: left + pw,
            span,
            in_w: g.in_w,
        };
        let (plane, positions) = (g.plane(), g.positions());
        let (gi, go, k) = (g.group_in(), g.group_out(), g.col_rows());
        let per_image = g.in_channels * plane;
        // `rows` is per-thread scratch: only its real values are written, so the zeros
        // around them stay from one image to the next.
        let image = |rows: &mut Vec<f32>, (n, out): (usize, &mut [f32])| {
            for group in 0..g.params.groups {
                let first = (n * g.out_channels + group * go) * positions;
                for (o, src) in dy[first..][..go * positions]
                    .chunks_exact(positions)
                    .enumerate()
                {
                    for (r, line) in src.chunks_exact(g.out_w).enumerate() {
                        rows[(o * g.out_h + r) * span + left..][..g.out_w].copy_from_slice(line);
                    }
                }
                let weights = &w[group * go * k..][..go * k];
                let planes = &mut out[group * gi * plane..][..gi * plane];
                for ih in 0..g.in_h {
                    input_row(shape, rows, weights, ih, planes);
                }
            }
        };
        if g.batch > 1 && 2 * g.macs() >= crate::gemm::PARALLEL_MIN_FLOPS {
            dx.par_chunks_mut(per_image.max(1))
                .enumerate()
                .for_each_init(|| vec![0.0f32; go * g.out_h * span], image);
        } else {
            let mut rows = vec![0.0f32; go * g.out_h * span];
            dx.chunks_mut(per_image.max(1))
                .enumerate()
                .for_each(|item| image(&mut rows, item));
        }
    }
}

/// The sizes of one group: `channels` input and `outputs` output channels, a `kernel` of
/// `(kh, kw)` taps, `out_h` output rows (of the zero-bordered copy, `span` floats each, the
/// run of tap kj starting at `start - kj`), vertical padding `pad_h`, input rows `in_w` wide.
#[derive(Debug, Clone, Copy)]
struct Shape {
    channels: usize,
    outputs: usize,
    kernel: (usize, usize),
    out_h: usize,
    pad_h: usize,
    start: usize,
    span: usize,
    in_w: usize,
}

/// Writes input row `ih` of every channel of the group into `planes` (`channels` planes of
/// `in_h x in_w`), from the zero-bordered output-gradient rows and the group's weights.
fn input_row(shape: Shape, rows: &[f32], weights: &[f32], ih: usize, planes: &mut [f32]) {
    let (kh, kw) = shape.kernel;
    assert!((1..=MAX_CHANNELS).contains(&shape.channels) && shape.in_w <= LANES);
    assert!(rows.len() >= shape.outputs * shape.out_h * shape.span);
    assert!(weights.len() >= shape.outputs * shape.channels * kh * kw);
    assert!(shape.start + LANES <= shape.span && shape.start + 1 >= kw);
    let plane = planes.len() / shape.channels;
    assert!((ih + 1) * shape.in_w <= plane);
    let mut out = [0.0f32; MAX_CHANNELS * LANES];
    // SAFETY: `input_gradient_by_rows` chose this path only on a CPU with AVX-512F; the
    // asserts above bound every read of `rows` and `weights`, and `out` holds 16 floats for
    // each of at most MAX_CHANNELS channels.
    unsafe {
        match shape.channels {
            12 => input_row_avx512::<12>(shape, rows, weights, ih, &mut out),
            11 => input_row_avx512::<11>(shape, rows, weights, ih, &mut out),
            10 => input_row_avx512::<10>(shape, rows, weights, ih, &mut out),
            9 => input_row_avx512::<9>(shape, rows, weights, ih, &mut out),
            8 => input_row_avx512::<8>(shape, rows, weights, ih, &mut out),
            7 => input_row_avx512::<7>(shape, rows, weights, ih, &mut out),
            6 => input_row_avx512::<6>(shape, rows, weights, ih, &mut out),
            5 => input_row_avx512::<5>(shape, rows, weights, ih, &mut out),
            4 => input_row_avx512::<4>(shape, rows, weights, ih, &mut out),
            3 => input_row_avx512::<3>(shape, rows, weights, ih, &mut out),
            2 => input_row_avx512::<2>(shape, rows, weights, ih, &mut out),
            _ => input_row_avx512::<1>(shape, rows, weights, ih, &mut out),
        }
    }
    for (c, dst) in planes.chunks_exact_mut(plane).enumerate() {
        dst[ih * shape.in_w..][..shape.in_w].copy_from_slice(&out[c * LANES..][..shape.in_w]);
    }
}

/// [`input_row`] for `C` input channels: row `ih` of each into `out[c * 16..]`.
///
/// # Safety
/// The CPU must support AVX-512F, and the reads must lie inside the slices (see
/// `input_row`'s asserts).
#[target_feature(enable = "avx512f")]
unsafe fn input_row_avx512<const C: usize>(
    shape: Shape,
    rows: &[f32],
    weights: &[f32],
    ih: usize,
    out: &mut [f32; MAX_CHANNELS * LANES],
) {
    use std::arch::x86_64::*;
    let (kh, kw) = shape.kernel;
    let (rp, wp) = (rows.as_ptr(), weights.as_ptr());
    let mut acc = [_mm512_setzero_ps(); C];
    for o in 0..shape.outputs {
        for ki in 0..kh {
            // Output row oh = ih + pad_h - ki, when it exists.
            let Some(oh) = (ih + shape.pad_h).checked_sub(ki) else {
                continue;
            };
            if oh >= shape.out_h {
                continue;
            }
            let row = (o * shape.out_h + oh) * shape.span + shape.start;
            for kj in 0..kw {
                // Weight (o, c, ki, kj) for c = 0: the next channel's is kh * kw further.
                let tap = ((o * shape.channels) * kh + ki) * kw + kj;
                // SAFETY: the run `row - kj .. row - kj + 16` lies inside row (o, oh) of
                // `rows` (start >= kw - 1 and start + 16 <= span); tap + (C - 1) * kh * kw
                // lies inside `weights`.
                unsafe {
                    let d = _mm512_loadu_ps(rp.add(row - kj));
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_set1_ps(*wp.add(tap + c * kh * kw)), d, *a);
                    }
                }
            }
        }
    }
    for (c, a) in acc.iter().enumerate() {
        // SAFETY: c < C <= MAX_CHANNELS, so 16 floats at c * 16 lie inside `out`.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(c * LANES), *a) };
    }
}
