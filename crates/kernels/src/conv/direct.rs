//! The direct weight gradient of stride-1, dilation-1 convolutions: layers with one input
//! channel per group (LeNet's first layer, depthwise layers) everywhere, and on AVX-512 the
//! few-channel layers whose rows fill its vectors (ResNet-20's first stage).
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
//! The dot products run a block at a time: a few output channels against a few taps of one
//! input channel (any taps of the kernel, each at its own offset), which share their loads:
//! 2 x 5 in 8-lane vectors on AVX2 (10 accumulators, 7 loads a step), 3 x 9 in 16-lane
//! vectors on AVX-512 (27 accumulators, 12 loads a step: a 3x3 kernel's every tap). Each
//! weight keeps one vector of partial sums across the images of a segment and adds its lanes
//! up (in lane order) only at the end. Images are summed in the same fixed segments as the
//! GEMM path (see `WEIGHT_GRADIENT_SEGMENTS` in `mod.rs`), so the result does not depend on
//! the thread count (it does on the instruction set: the lanes differ).

use rayon::prelude::*;

use super::geometry::Conv2dGeometry;
use super::padded::PaddedPlanes;
use super::partition::add_in_order;
use crate::gemm::PARALLEL_MIN_FLOPS;
use crate::isa::Isa;

/// The most taps one block computes side by side (AVX-512's 3x3).
const MAX_TAPS: usize = 9;

/// How one instruction set runs the blocks: the lanes of its vectors, the output channels and
/// taps of a block, and the block's computation.
#[derive(Debug, Clone, Copy)]
struct Blocking {
    lanes: usize,
    outs: usize,
    taps: usize,
    run: BlockFn,
}

/// The blocking this instruction set runs.
fn blocking_for(isa: Isa) -> Blocking {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => Blocking {
            lanes: 16,
            outs: 3,
            taps: MAX_TAPS,
            run: block_avx512,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512 if Isa::Avx2Fma.is_supported() => Blocking {
            lanes: 8,
            outs: 2,
            taps: 5,
            run: block_avx2,
        },
        _ => Blocking {
            lanes: 8,
            outs: 2,
            taps: 5,
            run: block_portable,
        },
    }
}

/// The padded layout shared by every image of one call.
#[derive(Debug, Clone, Copy)]
struct Flat {
    /// The padded input planes; a padded row is as wide as a flat output-gradient row.
    planes: PaddedPlanes,
    /// Floats of a vector of partial sums.
    lanes: usize,
    /// Vectors of one flat output-gradient plane (`out_h * width` rounded up).
    vectors: usize,
}

impl Flat {
    fn new(g: &Conv2dGeometry, lanes: usize) -> Flat {
        let width = g.in_w + 2 * g.params.padding.1;
        let vectors = (g.out_h * width).div_ceil(lanes);
        // The last tap reads `(kh - 1) * width + kw - 1` past the start of the plane, and
        // `vectors * lanes` floats from there.
        let reach = (g.kernel_h - 1) * width + g.kernel_w - 1 + vectors * lanes;
        Flat {
            planes: PaddedPlanes::new(g, reach),
            lanes,
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
    let blocking = blocking_for(isa);
    let flat = Flat::new(g, blocking.lanes);
    let lanes = blocking.lanes;
    let per_segment = g.batch.div_ceil(segments.max(1)).max(1);
    let run = |s: usize| {
        let mut sums = vec![0.0f32; dw.len() * lanes];
        let mut padded = vec![0.0f32; g.group_in() * flat.planes.len];
        let mut rows = vec![0.0f32; g.group_out() * flat.vectors * lanes];
        // One image at a time, so its padded planes and rows stay in L1 while every block
        // reads them (a whole segment's spilled to L2 and ran twice as long).
        for n in s * per_segment..((s + 1) * per_segment).min(g.batch) {
            for group in 0..g.params.groups {
                let scratch = (&mut padded[..], &mut rows[..]);
                add_image(g, flat, blocking, (n, group), x, dy, scratch, &mut sums);
            }
        }
        sums.chunks_exact(lanes)
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

/// Adds the weight gradient of image `n`, `group` to `sums` (`lanes` partial sums per
/// weight, in the weight's order), with `padded` and `rows` (zero where not written) as
/// scratch.
#[allow(clippy::too_many_arguments)]
fn add_image(
    g: &Conv2dGeometry,
    flat: Flat,
    blocking: Blocking,
    (n, group): (usize, usize),
    x: &[f32],
    dy: &[f32],
    (padded, rows): (&mut [f32], &mut [f32]),
    sums: &mut [f32],
) {
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let (gi, go, positions) = (g.group_in(), g.group_out(), g.positions());
    let (width, plane, lanes) = (flat.planes.width, flat.planes.len, flat.lanes);
    let row_len = flat.vectors * lanes;
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
    let taps = kh * kw;
    let o_stride = gi * taps * lanes;
    // Output channels in blocks as even as they can be (16 as 3, 3, 3, 3, 2, 2, not five 3s
    // and a 1), taps in runs of the flattened kernel.
    let out_blocks = go.div_ceil(blocking.outs);
    for c in 0..gi {
        let mut o0 = 0;
        for b in 0..out_blocks {
            let outs = go / out_blocks + usize::from(b < go % out_blocks);
            for t0 in (0..taps).step_by(blocking.taps) {
                let count = blocking.taps.min(taps - t0);
                let mut offsets = [0; MAX_TAPS];
                for (j, offset) in offsets[..count].iter_mut().enumerate() {
                    let (ki, kj) = ((t0 + j) / kw, (t0 + j) % kw);
                    *offset = ki * width + kj;
                }
                let shape = Block {
                    outs,
                    taps: count,
                    offsets,
                    lanes,
                    vectors: flat.vectors,
                    o_stride,
                };
                // Lane sums of weight (group * go + o0, c, t0) start at this float.
                let first = (((group * go + o0) * gi + c) * taps + t0) * lanes;
                let acc = &mut sums[first..][..shape.acc_len()];
                (blocking.run)(shape, &padded[c * plane..], &rows[o0 * row_len..], acc);
            }
            o0 += outs;
        }
    }
}

/// The shape of one block: `outs` output channels (flat rows of `vectors * lanes` floats, one
/// after another in `dy`) against `taps` taps (tap `j` reads `x` from `offsets[j]`); partial
/// sums of output `i`, tap `j` at `acc[i * o_stride + j * lanes..][..lanes]`.
#[derive(Debug, Clone, Copy)]
struct Block {
    outs: usize,
    taps: usize,
    offsets: [usize; MAX_TAPS],
    lanes: usize,
    vectors: usize,
    o_stride: usize,
}

impl Block {
    /// Floats of `acc` the block touches.
    fn acc_len(&self) -> usize {
        (self.outs - 1) * self.o_stride + self.taps * self.lanes
    }

    /// Floats of `x` the block reads.
    fn x_len(&self) -> usize {
        let reach = self.offsets[..self.taps].iter().max().copied().unwrap_or(0);
        self.vectors * self.lanes + reach
    }

    /// Floats of `dy` the block reads.
    fn dy_len(&self) -> usize {
        self.outs * self.vectors * self.lanes
    }

    /// Whether the block's extents lie inside the slices.
    fn fits(&self, x: &[f32], dy: &[f32], acc: &[f32]) -> bool {
        x.len() >= self.x_len() && dy.len() >= self.dy_len() && acc.len() >= self.acc_len()
    }
}

/// A block's computation: `(shape, x, dy, acc)`.
type BlockFn = fn(Block, &[f32], &[f32], &mut [f32]);

/// Portable [`BlockFn`]: the same sums, lane by lane.
fn block_portable(shape: Block, x: &[f32], dy: &[f32], acc: &mut [f32]) {
    let (lanes, row_len) = (shape.lanes, shape.vectors * shape.lanes);
    for i in 0..shape.outs {
        let d = &dy[i * row_len..][..row_len];
        for j in 0..shape.taps {
            let xs = &x[shape.offsets[j]..][..row_len];
            let sums = &mut acc[i * shape.o_stride + j * lanes..][..lanes];
            for (dv, xv) in d.chunks_exact(lanes).zip(xs.chunks_exact(lanes)) {
                for l in 0..lanes {
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
        (1..=2).contains(&shape.outs) && (1..=5).contains(&shape.taps) && shape.lanes == 8,
        "AVX2 direct block of {} x {}",
        shape.outs,
        shape.taps
    );
    assert!(shape.fits(x, dy, acc));
    // SAFETY: `blocking_for` hands out this function only after detecting AVX2 and FMA, and
    // the asserts above give every read and write of `block_avx2_fma` its extent.
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
    const LANES: usize = 8;
    let row_len = shape.vectors * LANES;
    let (xp, dp, ap) = (x.as_ptr(), dy.as_ptr(), acc.as_mut_ptr());
    let offsets: [usize; TAPS] = std::array::from_fn(|j| shape.offsets[j]);
    let mut sums = [[_mm256_setzero_ps(); TAPS]; OUTS];
    for (i, row) in sums.iter_mut().enumerate() {
        for (j, s) in row.iter_mut().enumerate() {
            // SAFETY: partial sums (i, j) lie inside `acc` (the caller's extent).
            *s = unsafe { _mm256_loadu_ps(ap.add(i * shape.o_stride + j * LANES)) };
        }
    }
    for v in 0..shape.vectors {
        let at = v * LANES;
        // SAFETY: x is read up to `at + 8 + offsets[j] <= x_len` and dy up to `at + (OUTS - 1)
        // * row_len + 8 <= dy_len`, within the caller's extents.
        unsafe {
            let xs: [__m256; TAPS] =
                std::array::from_fn(|j| _mm256_loadu_ps(xp.add(at + offsets[j])));
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

/// AVX-512 [`BlockFn`]: checks the slice extents, then runs the register-blocked loop.
#[cfg(target_arch = "x86_64")]
fn block_avx512(shape: Block, x: &[f32], dy: &[f32], acc: &mut [f32]) {
    assert!(
        (1..=3).contains(&shape.outs) && (1..=MAX_TAPS).contains(&shape.taps) && shape.lanes == 16,
        "AVX-512 direct block of {} x {}",
        shape.outs,
        shape.taps
    );
    assert!(shape.fits(x, dy, acc));
    // SAFETY: `blocking_for` hands out this function only after detecting AVX-512F, and the
    // asserts above give every read and write of `block_avx512f` its extent.
    unsafe {
        match shape.outs {
            3 => block_avx512_taps::<3>(shape, x, dy, acc),
            2 => block_avx512_taps::<2>(shape, x, dy, acc),
            _ => block_avx512_taps::<1>(shape, x, dy, acc),
        }
    }
}

/// [`block_avx512`] for `OUTS` output channels.
///
/// # Safety
/// As [`block_avx512f`].
#[cfg(target_arch = "x86_64")]
unsafe fn block_avx512_taps<const OUTS: usize>(
    shape: Block,
    x: &[f32],
    dy: &[f32],
    acc: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match shape.taps {
            9 => block_avx512f::<OUTS, 9>(shape, x, dy, acc),
            8 => block_avx512f::<OUTS, 8>(shape, x, dy, acc),
            7 => block_avx512f::<OUTS, 7>(shape, x, dy, acc),
            6 => block_avx512f::<OUTS, 6>(shape, x, dy, acc),
            5 => block_avx512f::<OUTS, 5>(shape, x, dy, acc),
            4 => block_avx512f::<OUTS, 4>(shape, x, dy, acc),
            3 => block_avx512f::<OUTS, 3>(shape, x, dy, acc),
            2 => block_avx512f::<OUTS, 2>(shape, x, dy, acc),
            _ => block_avx512f::<OUTS, 1>(shape, x, dy, acc),
        }
    }
}

/// `OUTS x TAPS` accumulators of sixteen lanes, loaded from `acc`, fed one vector of every
/// flat row per step, stored back.
///
/// # Safety
/// The CPU must support AVX-512F, and `x`, `dy` and `acc` must hold the block's extents
/// ([`Block::x_len`], [`Block::dy_len`], [`Block::acc_len`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512f<const OUTS: usize, const TAPS: usize>(
    shape: Block,
    x: &[f32],
    dy: &[f32],
    acc: &mut [f32],
) {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    let row_len = shape.vectors * LANES;
    let (xp, dp, ap) = (x.as_ptr(), dy.as_ptr(), acc.as_mut_ptr());
    let offsets: [usize; TAPS] = std::array::from_fn(|j| shape.offsets[j]);
    let mut sums = [[_mm512_setzero_ps(); TAPS]; OUTS];
    for (i, row) in sums.iter_mut().enumerate() {
        for (j, s) in row.iter_mut().enumerate() {
            // SAFETY: partial sums (i, j) lie inside `acc` (the caller's extent).
            *s = unsafe { _mm512_loadu_ps(ap.add(i * shape.o_stride + j * LANES)) };
        }
    }
    for v in 0..shape.vectors {
        let at = v * LANES;
        // SAFETY: dy is read up to `at + (OUTS - 1) * row_len + 16 <= dy_len` and x up to
        // `at + offsets[j] + 16 <= x_len`, within the caller's extents.
        unsafe {
            let d: [__m512; OUTS] =
                std::array::from_fn(|i| _mm512_loadu_ps(dp.add(at + i * row_len)));
            for (j, &offset) in offsets.iter().enumerate() {
                let xv = _mm512_loadu_ps(xp.add(at + offset));
                for (row, &dv) in sums.iter_mut().zip(&d) {
                    row[j] = _mm512_fmadd_ps(dv, xv, row[j]);
                }
            }
        }
    }
    for (i, row) in sums.iter().enumerate() {
        for (j, s) in row.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm512_storeu_ps(ap.add(i * shape.o_stride + j * LANES), *s) };
        }
    }
}
