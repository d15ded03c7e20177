//! [`ConvPath::Channels`] on AVX-512: direct convolution vectorised across the output
//! channels, for layers whose lowering would cost as much as their multiply. The forward pass
//! (`channels_forward.rs`) serves any layer with whole registers of 16 output channels per
//! group, strided or not: LeNet-5's second layer, ResNet-20's first stage, and the first
//! layers of AlexNet, ResNet and VGG (three input channels). The weight gradient here serves
//! stride-1 layers of exactly 16 output channels per group.
//!
//! The weight gradient keeps one kernel row's taps in registers (one zmm register holds a tap
//! for all 16 channels of a group) and, for every output position, multiplies the position's
//! 16 output gradients by each tap's pixel. Nothing is lowered: the im2col path spent half its
//! time lowering 10-wide rows. Every sum runs in a fixed order (over the same fixed segments
//! of images as the GEMM path), so results do not depend on the thread count.

use rayon::prelude::*;

use super::Conv2d;
#[cfg(doc)]
use super::ConvPath;
use super::geometry::Conv2dGeometry;
use super::padded::PaddedPlanes;

/// Output channels per group the path serves: the lanes of one zmm register.
pub(super) const LANES: usize = 16;

/// Widest kernel whose row of taps the weight gradient keeps in registers.
pub(super) const MAX_KERNEL_W: usize = 8;

impl Conv2d {
    /// `dw = sum over images and positions of dy * x` vectorised across output channels (see
    /// the module docs), overwriting `dw`; images are summed in `segments` fixed runs side by
    /// side, added in order. The caller has checked [`ConvPath::Channels`] serves the pass
    /// and the slice lengths.
    pub(super) fn backward_weight_channels(
        &self,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        segments: usize,
    ) {
        let g = &self.geometry;
        let (shape, planes) = Rows::of(g);
        let (gi, k, positions) = (g.group_in(), g.col_rows(), g.positions());
        let groups = g.params.groups;
        let per_segment = g.batch.div_ceil(segments.max(1)).max(1);
        // Partial sums as [group][c][ki][kj][o].
        let run = |s: usize| {
            let mut sums = vec![0.0f32; groups * k * LANES];
            let mut padded = vec![0.0f32; gi * planes.len];
            let mut dy_t = vec![0.0f32; positions * LANES];
            for n in s * per_segment..((s + 1) * per_segment).min(g.batch) {
                for group in 0..groups {
                    planes.copy_group(g, x, n, group, &mut padded);
                    // This image's output gradients as [position][channel].
                    let first = (n * g.out_channels + group * LANES) * positions;
                    for (o, src) in dy[first..][..LANES * positions]
                        .chunks_exact(positions)
                        .enumerate()
                    {
                        for (p, &v) in src.iter().enumerate() {
                            dy_t[p * LANES + o] = v;
                        }
                    }
                    add_weight_gradient(
                        shape,
                        &padded,
                        &dy_t,
                        &mut sums[group * k * LANES..][..k * LANES],
                    );
                }
            }
            sums
        };
        let count = g.batch.div_ceil(per_segment);
        let partials: Vec<Vec<f32>> =
            if count > 1 && 2 * g.macs() >= crate::gemm::PARALLEL_MIN_FLOPS {
                (0..count).into_par_iter().map(run).collect()
            } else {
                (0..count).map(run).collect()
            };
        dw.fill(0.0);
        for partial in &partials {
            for (o_all, filter) in dw.chunks_exact_mut(k).enumerate() {
                let (group, o) = (o_all / LANES, o_all % LANES);
                for (r, d) in filter.iter_mut().enumerate() {
                    *d += partial[(group * k + r) * LANES + o];
                }
            }
        }
    }
}

/// Adds one image's weight gradient for one group to `sums` (`[c][ki][kj][o]`), from its
/// padded input planes and its output gradients `dy_t` (`[position][o]`).
fn add_weight_gradient(shape: Rows, padded: &[f32], dy_t: &[f32], sums: &mut [f32]) {
    let (kh, kw) = shape.kernel;
    let (out_h, out_w) = shape.out;
    assert!(padded.len() >= shape.channels * shape.padded_len);
    assert!(dy_t.len() >= out_h * out_w * LANES && sums.len() >= shape.channels * kh * kw * LANES);
    assert!((out_h + kh - 1) * shape.width <= shape.padded_len && out_w + kw - 1 <= shape.width);
    assert!((1..=MAX_KERNEL_W).contains(&kw), "kernel width {kw}");
    for c in 0..shape.channels {
        for ki in 0..kh {
            let at = ((c * kh + ki) * kw) * LANES;
            let row = &mut sums[at..][..kw * LANES];
            // SAFETY: `weight_gradient_by_channels` chose this path only on a CPU with
            // AVX-512F; the asserts above bound every read of `padded` and `dy_t`, and `row`
            // holds kw * 16 floats.
            unsafe {
                match kw {
                    8 => kernel_row_avx512::<8>(shape, padded, dy_t, c, ki, row),
                    7 => kernel_row_avx512::<7>(shape, padded, dy_t, c, ki, row),
                    6 => kernel_row_avx512::<6>(shape, padded, dy_t, c, ki, row),
                    5 => kernel_row_avx512::<5>(shape, padded, dy_t, c, ki, row),
                    4 => kernel_row_avx512::<4>(shape, padded, dy_t, c, ki, row),
                    3 => kernel_row_avx512::<3>(shape, padded, dy_t, c, ki, row),
                    2 => kernel_row_avx512::<2>(shape, padded, dy_t, c, ki, row),
                    _ => kernel_row_avx512::<1>(shape, padded, dy_t, c, ki, row),
                }
            }
        }
    }
}

/// The sums of kernel row `ki` of input channel `c` (`KW` taps of 16 output channels in
/// `row`), plus this image's products over every output position.
///
/// # Safety
/// The CPU must support AVX-512F, and the reads must lie inside the slices (see
/// `add_weight_gradient`'s asserts); `row` must hold `KW * 16` floats.
#[target_feature(enable = "avx512f")]
unsafe fn kernel_row_avx512<const KW: usize>(
    shape: Rows,
    padded: &[f32],
    dy_t: &[f32],
    c: usize,
    ki: usize,
    row: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (out_h, out_w) = shape.out;
    let (xp, dp, rp) = (padded.as_ptr(), dy_t.as_ptr(), row.as_mut_ptr());
    // SAFETY: `row` holds KW * 16 floats (the caller's contract).
    let mut acc: [__m512; KW] =
        std::array::from_fn(|kj| unsafe { _mm512_loadu_ps(rp.add(kj * LANES)) });
    for oh in 0..out_h {
        let line = c * shape.padded_len + (oh + ki) * shape.width;
        for ow in 0..out_w {
            // SAFETY: position oh * out_w + ow < out_h * out_w, so its 16 gradients lie inside
            // `dy_t`; pixels `line + ow + kj` (kj < KW) lie inside the padded plane.
            unsafe {
                let d = _mm512_loadu_ps(dp.add((oh * out_w + ow) * LANES));
                for (kj, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(d, _mm512_set1_ps(*xp.add(line + ow + kj)), *a);
                }
            }
        }
    }
    for (kj, a) in acc.iter().enumerate() {
        // SAFETY: as for the loads.
        unsafe { _mm512_storeu_ps(rp.add(kj * LANES), *a) };
    }
}

/// The sizes one group's computation needs: `channels` padded input planes of `padded_len`
/// floats (rows `width` apart), a `kernel` of `(kh, kw)` taps moved `stride` pixels from one
/// output to the next, `out` of `(out_h, out_w)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows {
    pub channels: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub width: usize,
    pub padded_len: usize,
    pub out: (usize, usize),
}

impl Rows {
    /// The sizes of `g`, and the layout of its padded input planes.
    pub(super) fn of(g: &Conv2dGeometry) -> (Rows, PaddedPlanes) {
        let planes = PaddedPlanes::new(g, 0);
        let rows = Rows {
            channels: g.group_in(),
            kernel: (g.kernel_h, g.kernel_w),
            stride: g.params.stride,
            width: planes.width,
            padded_len: planes.len,
            out: (g.out_h, g.out_w),
        };
        (rows, planes)
    }
}
