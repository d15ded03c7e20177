//! The direct weight gradient of convolutions with one input channel per group (LeNet's first
//! layer, depthwise layers) at stride 1 and dilation 1.
//!
//! Lowered to a GEMM, such a layer has a handful of rows (the group's output channels) and a
//! few dozen columns (the taps) against a reduction over every position of every image, so
//! the GEMM spends its time lowering, transposing and storing tiny tiles.
//! Here each weight is instead a dot product over flat rows. Each input plane is zero-padded
//! to `Hp x Wp`, and each output-gradient plane is copied into rows of the same width `Wp`,
//! with zeros past the `out_w` real columns. The tap `(ki, kj)` then reads the padded input
//! at a constant offset `ki * Wp + kj` from the output position, and its weight's gradient is
//! `dot(dy_rows, padded[ki * Wp + kj..])` over `out_h * Wp` elements: the zero columns cancel
//! the positions that wrap into the next row.
//!
//! The dot products run a block at a time: up to [`OUT_BLOCK`] output channels against up to
//! [`TAP_BLOCK`] neighbouring taps of one kernel row, which share their loads, in
//! [`LANES`]-wide vectors. Each weight keeps `LANES` partial sums across the images of a
//! segment and adds them up (in lane order) only at the end. Images are summed in the same
//! fixed segments as the GEMM path (see `WEIGHT_GRADIENT_SEGMENTS` in `mod.rs`), so the
//! result does not depend on the thread count.

use rayon::prelude::*;

use super::geometry::Conv2dGeometry;
use super::padded::PaddedPlanes;
use super::partition::add_in_order;
use crate::gemm::PARALLEL_MIN_FLOPS;
use crate::isa::Isa;

/// Floats of one vector of partial sums: an AVX2 register.
const LANES: usize = 8;

/// Output channels whose dot products one block computes side by side.
const OUT_BLOCK: usize = 2;

/// Neighbouring taps of one kernel row one block computes side by side: with
/// [`OUT_BLOCK`] outputs, 10 accumulators and 7 loads in 16 AVX2 registers.
const TAP_BLOCK: usize = 5;

/// The padded layout shared by every image of one call.
#[derive(Debug, Clone, Copy)]
struct Flat {
    /// The padded input planes; a padded row is as wide as a flat output-gradient row.
    planes: PaddedPlanes,
    /// Vectors of one flat output-gradient plane (`out_h * width` rounded up).
    vectors: usize,
}

impl Flat {
    fn new(g: &Conv2dGeometry) -> Flat {
        let width = g.in_w + 2 * g.params.padding.1;
        let vectors = (g.out_h * width).div_ceil(LANES);
        // The last tap reads `(kh - 1) * width + kw - 1` past the start of the plane, and
        // `vectors * LANES` floats from there.
        let reach = (g.kernel_h - 1) * width + g.kernel_w - 1 + vectors * LANES;
        Flat {
            planes: PaddedPlanes::new(g, reach),
            vectors,
        }
    }
}

/// `dw = sum over images of the per-tap dot products`, overwriting `dw`. The reduction over
/// images is cut into `segments` fixed runs of whole images, summed side by side and added in
/// order. The caller has checked [`super::ConvPath::Direct`] serves the pass and the
/// slice lengths.
pub(super) fn weight_gradient(
    isa: Isa,
    g: &Conv2dGeometry,
    segments: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let flat = Flat::new(g);
    let block = block_for(isa);
    let per_segment = g.batch.div_ceil(segments.max(1)).max(1);
    let run = |s: usize| {
        let mut lanes = vec![0.0f32; dw.len() * LANES];
        let mut padded = vec![0.0f32; g.group_in() * flat.planes.len];
        let mut rows = vec![0.0f32; g.group_out() * flat.vectors * LANES];
        // One image at a time, so its padded planes and rows stay in L1 while every block
        // reads them (a whole segment's spilled to L2 and ran twice as long).
        for n in s * per_segment..((s + 1) * per_segment).min(g.batch) {
            for group in 0..g.params.groups {
                let scratch = (&mut padded[..], &mut rows[..]);
                add_image(g, flat, block, (n, group), x, dy, scratch, &mut lanes);
            }
        }
        lanes
            .chunks_exact(LANES)
            .map(|v| v.iter().sum::<f32>())
            .collect::<Vec<f32>>()
    };
    let count = g.batch.div_ceil(per_segment);
    let flops = 2 * g.macs();
    let partials: Vec<Vec<f32>> = if flops >= PARALLEL_MIN_FLOPS && count > 1 {
        (0..count).into_par_iter().map(run).collect()
    } else {
        (0..count).map(run).collect()
    };
    dw.fill(0.0);
    add_in_order(dw, partials.iter().map(Vec::as_slice));
}

/// Adds the weight gradient of image `n`, `group` to `lanes` (`LANES` partial sums per
/// weight, in the weight's order), with `padded` and `rows` (zero where not written) as
/// scratch.
#[allow(clippy::too_many_arguments)]
fn add_image(
    g: &Conv2dGeometry,
    flat: Flat,
    block: BlockFn,
    (n, group): (usize, usize),
    x: &[f32],
    dy: &[f32],
    (padded, rows): (&mut [f32], &mut [f32]),
    lanes: &mut [f32],
) {
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let (gi, go, positions) = (g.group_in(), g.group_out(), g.positions());
    let (width, plane) = (flat.planes.width, flat.planes.len);
    let row_len = flat.vectors * LANES;
    // The padded input planes, then the flat output-gradient rows: only the pixels are
    // written, so the padding and the extra columns stay zero from the first image on.
    flat.planes.copy_group(g, x, n, group, padded);
    let first_out = (n * g.out_channels + group * go) * positions;
    for (src, dst) in dy[first_out..][..go * positions]
        .chunks_exact(positions)
        .zip(rows.chunks_exact_mut(row_len))
    {
        for (r, line) in src.chunks_exact(g.out_w).enumerate() {
            dst[r * width..][..g.out_w].copy_from_slice(line);
        }
    }
    // Lane sums of weight (group * go + o, c, ki, kj) start at this float.
    let weight = |o: usize, c: usize, ki: usize, kj: usize| {
        ((((group * go + o) * gi + c) * kh + ki) * kw + kj) * LANES
    };
    let o_stride = gi * kh * kw * LANES;
    for c in 0..gi {
        for ki in 0..kh {
            for o0 in (0..go).step_by(OUT_BLOCK) {
                let outs = OUT_BLOCK.min(go - o0);
                for kj0 in (0..kw).step_by(TAP_BLOCK) {
                    let taps = TAP_BLOCK.min(kw - kj0);
                    let shape = Block {
                        outs,
                        taps,
                        vectors: flat.vectors,
                        o_stride,
                    };
                    let x_start = c * plane + ki * width + kj0;
                    let dy_start = o0 * row_len;
                    let acc = &mut lanes[weight(o0, c, ki, kj0)..][..shape.acc_len()];
                    block(shape, &padded[x_start..], &rows[dy_start..], acc);
                }
            }
        }
    }
}

/// The shape of one block: `outs` output channels (flat rows of `vectors * LANES` floats, one
/// after another in `dy`) against `taps` taps (shifts 0..taps of `x`); partial sums of output
/// `i`, tap `j` at `acc[i * o_stride + j * LANES..][..LANES]`.
#[derive(Debug, Clone, Copy)]
struct Block {
    outs: usize,
    taps: usize,
    vectors: usize,
    o_stride: usize,
}

impl Block {
    /// Floats of `acc` the block touches.
    fn acc_len(&self) -> usize {
        (self.outs - 1) * self.o_stride + self.taps * LANES
    }

    /// Floats of `x` the block reads.
    fn x_len(&self) -> usize {
        self.vectors * LANES + self.taps - 1
    }

    /// Floats of `dy` the block reads.
    fn dy_len(&self) -> usize {
        self.outs * self.vectors * LANES
    }
}

/// A block's computation: `(shape, x, dy, acc)`.
type BlockFn = fn(Block, &[f32], &[f32], &mut [f32]);

/// The block computation this instruction set runs.
fn block_for(isa: Isa) -> BlockFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512 if Isa::Avx2Fma.is_supported() => block_avx2,
        _ => block_portable,
    }
}

/// Portable [`BlockFn`]: the same sums, lane by lane.
fn block_portable(shape: Block, x: &[f32], dy: &[f32], acc: &mut [f32]) {
    let row_len = shape.vectors * LANES;
    for i in 0..shape.outs {
        let d = &dy[i * row_len..][..row_len];
        for j in 0..shape.taps {
            let xs = &x[j..][..row_len];
            let sums = &mut acc[i * shape.o_stride + j * LANES..][..LANES];
            for (dv, xv) in d.chunks_exact(LANES).zip(xs.chunks_exact(LANES)) {
                for l in 0..LANES {
                    sums[l] += dv[l] * xv[l];
                }
            }
        }
    }
}

/// AVX2 [`BlockFn`]: checks the slice extents, then runs the register-blocked loop.
#[cfg(target_arch = "x86_64")]
fn block_avx2(shape: Block, x: &[f32], dy: &[f32], acc: &mut [f32]) {
    assert!(
        (1..=OUT_BLOCK).contains(&shape.outs) && (1..=TAP_BLOCK).contains(&shape.taps),
        "direct block of {} x {}",
        shape.outs,
        shape.taps
    );
    assert!(x.len() >= shape.x_len() && dy.len() >= shape.dy_len() && acc.len() >= shape.acc_len());
    // SAFETY: `block_for` hands out this function only after detecting AVX2 and FMA, and the
    // asserts above give every read and write of `block_avx2_fma` its extent.
    unsafe {
        match (shape.outs, shape.taps) {
            (2, 5) => block_avx2_fma::<2, 5>(shape, x, dy, acc),
            (2, 4) => block_avx2_fma::<2, 4>(shape, x, dy, acc),
            (2, 3) => block_avx2_fma::<2, 3>(shape, x, dy, acc),
            (2, 2) => block_avx2_fma::<2, 2>(shape, x, dy, acc),
            (2, _) => block_avx2_fma::<2, 1>(shape, x, dy, acc),
            (_, 5) => block_avx2_fma::<1, 5>(shape, x, dy, acc),
            (_, 4) => block_avx2_fma::<1, 4>(shape, x, dy, acc),
            (_, 3) => block_avx2_fma::<1, 3>(shape, x, dy, acc),
            (_, 2) => block_avx2_fma::<1, 2>(shape, x, dy, acc),
            _ => block_avx2_fma::<1, 1>(shape, x, dy, acc),
        }
    }
}

/// `OUTS x TAPS` accumulators of eight lanes, loaded from `acc`, fed one vector of every flat
/// row per step, stored back.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `x`, `dy` and `acc` must hold the block's extents
/// ([`Block::x_len`], [`Block::dy_len`], [`Block::acc_len`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2_fma<const OUTS: usize, const TAPS: usize>(
    shape: Block,
    x: &[f32],
    dy: &[f32],
    acc: &mut [f32],
) {
    use std::arch::x86_64::*;
    let row_len = shape.vectors * LANES;
    let (xp, dp, ap) = (x.as_ptr(), dy.as_ptr(), acc.as_mut_ptr());
    let mut sums = [[_mm256_setzero_ps(); TAPS]; OUTS];
    for (i, row) in sums.iter_mut().enumerate() {
        for (j, s) in row.iter_mut().enumerate() {
            // SAFETY: partial sums (i, j) lie inside `acc` (the caller's extent).
            *s = unsafe { _mm256_loadu_ps(ap.add(i * shape.o_stride + j * LANES)) };
        }
    }
    for v in 0..shape.vectors {
        let at = v * LANES;
        // SAFETY: x is read up to `at + 8 + TAPS - 1 <= x_len` and dy up to `at + (OUTS - 1) *
        // row_len + 8 <= dy_len`, within the caller's extents.
        unsafe {
            let xs: [__m256; TAPS] = std::array::from_fn(|j| _mm256_loadu_ps(xp.add(at + j)));
            for (i, row) in sums.iter_mut().enumerate() {
                let d = _mm256_loadu_ps(dp.add(at + i * row_len));
                for (s, &xv) in row.iter_mut().zip(&xs) {
                    *s = _mm256_fmadd_ps(d, xv, *s);
                }
            }
        }
    }
    for (i, row) in sums.iter().enumerate() {
        for (j, s) in row.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm256_storeu_ps(ap.add(i * shape.o_stride + j * LANES), *s) };
        }
    }
}
