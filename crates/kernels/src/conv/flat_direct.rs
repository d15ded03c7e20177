//! The forward pass over flat rows (`flat.rs`) on AVX-512 or AVX2 without lowering: the padded
//! input planes are read in place, a register of flat positions at a time.
//!
//! A block is `O` output channels times `P` registers of consecutive flat positions, `O * P`
//! accumulators. For every tap `(c, ki, kj)` it loads the `P` registers of input at the tap's
//! constant offset and broadcasts the `O` channels' weights: `O + P` loads for `O * P` FMAs
//! (11 for 24 at 8 x 3 zmm registers of 16 positions on AVX-512 where the output channels
//! come in eights, else 10 at 4 x 6; 6 for 8 at 4 x 2 ymm registers of 8 on AVX2), and no
//! copy of the input per tap, which the GEMM path's packing spends as long on as its
//! multiply for ResNet-20's 16-channel layers.
//!
//! Every output is its bias plus the taps' products in order (input channel, kernel row,
//! kernel column), as on the channel-vectorised path, whatever the block or thread count.

use super::padded::{GroupScratch, PaddedPlanes, for_each_unit, unit_of};
use super::{Conv2d, Epilogue};

/// Registers of flat positions an AVX-512 block holds.
const P: usize = 6;
/// Output channels of an AVX-512 block where the group's output channels are a multiple of
/// them: 8 x 3 registers read each run of input half as often as 4 x 6 for the same 24
/// accumulators, at 11 loads per 24 FMAs instead of 10. On a Xeon (family 6 model 0xa7,
/// alternating with 4 x 6 in one process, bits equal) ResNet-20's 16-channel layer at 32 x 32
/// ran 1.03-1.09x as fast forward at 1 thread (level at 2) and 1.09-1.11x for the input
/// gradient (its transposed convolution); the whole ResNet-20 training step was level to
/// 1.03x.
const OUTS_WIDE: usize = 8;
/// Registers of flat positions an AVX-512 block of [`OUTS_WIDE`] output channels holds.
const P_WIDE: usize = 3;
/// Floats of a zmm register.
const LANES: usize = 16;
/// Registers of flat positions an AVX2 block holds: 4 x 2 accumulators, 2 inputs and a
/// broadcast weight. At 4 x 3 (all 16 ymm registers) LLVM spilled an accumulator, and a
/// store-to-load chain through the stack halved the rate: on an AMD EPYC Zen 3, 16 input
/// channels of 3x3 taps over 34-wide flat rows ran at 39-40 GFLOP/s in blocks of 4 x 3, 82 in
/// blocks of 4 x 2 and 88 in blocks of 3 x 3 (peak 92; 16 channels do not split into 3s).
const P_AVX2: usize = 2;
/// Floats of a ymm register.
const LANES_AVX2: usize = 8;
/// Output channels a block holds at most.
const MAX_OUTS: usize = 4;

impl Conv2d {
    /// `y = epilogue(conv(x, w) + bias)` over flat rows read in place (see the module docs);
    /// the caller has checked [`super::ConvPath::Flat`] serves the pass, the slice lengths,
    /// and that this CPU has AVX-512F (`self.isa` is AVX-512) or AVX2 and FMA (otherwise).
    pub(super) fn forward_flat_direct(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) {
        let g = &self.geometry;
        let width = g.in_w + 2 * g.params.padding.1;
        let flat = g.out_h * width;
        let avx512 = self.isa == crate::isa::Isa::Avx512;
        let go = g.group_out();
        let outs = if avx512 && go.is_multiple_of(OUTS_WIDE) {
            OUTS_WIDE
        } else {
            (1..=MAX_OUTS.min(go))
                .rev()
                .find(|&o| go.is_multiple_of(o))
                .unwrap_or(1)
        };
        // Flat positions of a block.
        let span = match (avx512, outs) {
            (true, OUTS_WIDE) => P_WIDE * LANES,
            (true, _) => P * LANES,
            (false, _) => P_AVX2 * LANES_AVX2,
        };
        let blocks = flat.div_ceil(span);
        // The last block reads `span` floats from its first position, at the last tap's
        // offset: past the padded plane by up to that much.
        let reach = (g.kernel_h - 1) * width + g.kernel_w - 1 + blocks * span;
        let planes = PaddedPlanes::new(g, reach);
        let (gi, k, positions) = (g.group_in(), g.col_rows(), g.positions());
        let groups = g.params.groups;
        // Tap r (input channel c, kernel row ki, column kj) reads this far from a position.
        let offsets: Vec<usize> = (0..k)
            .map(|r| {
                let (c, ki, kj) = self.tap(r);
                c * planes.len + ki * width + kj
            })
            .collect();
        let max_offset = offsets.iter().max().copied().unwrap_or(0);
        let chunks = go / outs;
        let relu = epilogue == Epilogue::Relu;
        // A unit is `outs` output planes of one group of one image, a contiguous run of `y`;
        // its group's padded planes are per-thread scratch, copied when they change.
        let wide_len = outs * blocks * span;
        let unit = |scratch: &mut GroupScratch, (index, out): (usize, &mut [f32])| {
            let (n, group, chunk) = unit_of(index, groups, chunks);
            let (padded, wide) = scratch.planes(&planes, (g, x), (n, group), wide_len);
            let first = group * go + chunk * outs;
            let block = Block {
                padded,
                offsets: &offsets,
                max_offset,
                weights: &w[first * k..][..outs * k],
                bias: bias.map(|b| &b[first..][..outs]),
                outs,
                relu,
            };
            for b in 0..blocks {
                // SAFETY: `forward_on` runs this path only where AVX-512F (`avx512`) or AVX2
                // and FMA were detected; `reach` covers every read of the block at position
                // b * span, and `wide` holds `outs` rows of blocks * span floats.
                unsafe { run_block(&block, avx512, b * span, blocks * span, wide) };
            }
            // Keep the first out_w columns of every flat row.
            for (dst, src) in out
                .chunks_exact_mut(positions)
                .zip(wide.chunks_exact(blocks * span))
            {
                // SAFETY: as above; `src` holds out_h rows of `width >= out_w` floats and
                // `dst` out_h rows of out_w.
                unsafe {
                    if avx512 {
                        keep_columns(src, (width, g.out_w), dst)
                    } else {
                        keep_columns_avx2(src, (width, g.out_w), dst)
                    }
                };
            }
        };
        let scratch = || GroupScratch::new(&planes, gi);
        let parallel = 2 * g.macs() >= crate::gemm::PARALLEL_MIN_FLOPS;
        for_each_unit(y, outs * positions, parallel, scratch, unit);
    }
}

/// What the blocks of a unit read: the padded planes, each tap's offset in them, the unit's
/// `outs` filters (`k` taps each, one after another) and biases.
struct Block<'a> {
    padded: &'a [f32],
    offsets: &'a [usize],
    /// The largest of `offsets` (found once per layer, not per block).
    max_offset: usize,
    weights: &'a [f32],
    bias: Option<&'a [f32]>,
    outs: usize,
    relu: bool,
}

/// The block of flat positions `at..at + span` of every output channel of `block`, into
/// `wide` (row `o` at `o * row`); `span` is `P * 16` on AVX-512 (`avx512`), else
/// `P_AVX2 * 8`.
///
/// # Safety
/// The CPU must support AVX-512F if `avx512`, else AVX2 and FMA; `block.padded` must hold
/// `span` floats from `at + offset` for every tap's offset, and `wide` `outs` rows of
/// `row >= at + span` floats.
unsafe fn run_block(block: &Block, avx512: bool, at: usize, row: usize, wide: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (avx512, block.outs) {
            (true, OUTS_WIDE) => block_avx512::<OUTS_WIDE, P_WIDE>(block, at, row, wide),
            (true, 4) => block_avx512::<4, P>(block, at, row, wide),
            (true, 3) => block_avx512::<3, P>(block, at, row, wide),
            (true, 2) => block_avx512::<2, P>(block, at, row, wide),
            (true, _) => block_avx512::<1, P>(block, at, row, wide),
            (false, 4) => block_avx2::<4>(block, at, row, wide),
            (false, 3) => block_avx2::<3>(block, at, row, wide),
            (false, 2) => block_avx2::<2>(block, at, row, wide),
            (false, _) => block_avx2::<1>(block, at, row, wide),
        }
    }
}

/// [`run_block`] for `O` output channels.
///
/// # Safety
/// As [`run_block`].
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const O: usize, const P: usize>(
    block: &Block,
    at: usize,
    row: usize,
    wide: &mut [f32],
) {
    use std::arch::x86_64::*;
    let k = block.offsets.len();
    assert!(block.weights.len() >= O * k && wide.len() >= O * row && at + P * LANES <= row);
    let reach = block.max_offset + at + P * LANES;
    assert!(block.padded.len() >= reach);
    let (xp, wp) = (block.padded.as_ptr(), block.weights.as_ptr());
    let start: [__m512; O] =
        std::array::from_fn(|o| _mm512_set1_ps(block.bias.map_or(0.0, |b| b[o])));
    let mut acc = [start; P];
    for (t, &offset) in block.offsets.iter().enumerate() {
        // SAFETY: offset + at + P * 16 <= reach <= padded.len() (asserted), and tap t of
        // filter o < O lies at o * k + t < weights.len() (asserted).
        unsafe {
            let inputs: [__m512; P] =
                std::array::from_fn(|p| _mm512_loadu_ps(xp.add(offset + at + p * LANES)));
            for o in 0..O {
                let weight = _mm512_set1_ps(*wp.add(o * k + t));
                for (a, &input) in acc.iter_mut().zip(&inputs) {
                    a[o] = _mm512_fmadd_ps(weight, input, a[o]);
                }
            }
        }
    }
    let zero = _mm512_setzero_ps();
    for (p, a) in acc.iter().enumerate() {
        for (o, &v) in a.iter().enumerate() {
            // max(0, v) is v for NaN and -0.0, as `relu_value`.
            let v = if block.relu {
                _mm512_max_ps(zero, v)
            } else {
                v
            };
            // SAFETY: o * row + at + p * 16 + 16 <= O * row <= wide.len() (asserted).
            unsafe { _mm512_storeu_ps(wide.as_mut_ptr().add(o * row + at + p * LANES), v) };
        }
    }
}

/// [`run_block`] for `O` output channels on AVX2: `P_AVX2` ymm registers of 8 positions, the
/// same sums in the same order as [`block_avx512`].
///
/// # Safety
/// As [`run_block`], with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const O: usize>(block: &Block, at: usize, row: usize, wide: &mut [f32]) {
    use std::arch::x86_64::*;
    const SPAN: usize = P_AVX2 * LANES_AVX2;
    let k = block.offsets.len();
    assert!(block.weights.len() >= O * k && wide.len() >= O * row && at + SPAN <= row);
    let reach = block.max_offset + at + SPAN;
    assert!(block.padded.len() >= reach);
    let (xp, wp) = (block.padded.as_ptr(), block.weights.as_ptr());
    let start: [__m256; O] =
        std::array::from_fn(|o| _mm256_set1_ps(block.bias.map_or(0.0, |b| b[o])));
    let mut acc = [start; P_AVX2];
    for (t, &offset) in block.offsets.iter().enumerate() {
        // SAFETY: offset + at + SPAN <= reach <= padded.len() (asserted), and tap t of
        // filter o < O lies at o * k + t < weights.len() (asserted).
        unsafe {
            let inputs: [__m256; P_AVX2] =
                std::array::from_fn(|p| _mm256_loadu_ps(xp.add(offset + at + p * LANES_AVX2)));
            for o in 0..O {
                let weight = _mm256_broadcast_ss(&*wp.add(o * k + t));
                for (a, &input) in acc.iter_mut().zip(&inputs) {
                    a[o] = _mm256_fmadd_ps(weight, input, a[o]);
                }
            }
        }
    }
    let zero = _mm256_setzero_ps();
    for (p, a) in acc.iter().enumerate() {
        for (o, &v) in a.iter().enumerate() {
            // max(0, v) is v for NaN and -0.0, as `relu_value`.
            let v = if block.relu {
                _mm256_max_ps(zero, v)
            } else {
                v
            };
            // SAFETY: o * row + at + p * 8 + 8 <= O * row <= wide.len() (asserted).
            unsafe { _mm256_storeu_ps(wide.as_mut_ptr().add(o * row + at + p * LANES_AVX2), v) };
        }
    }
}

/// Copies the first `out_w` floats of every `width`-float row of `src` into the rows of `dst`
/// (`out_w` floats each), 16 at a time: rows of 32 floats copied by `copy_from_slice` cost a
/// library call each, a fifth of this path's time.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn keep_columns(src: &[f32], (width, out_w): (usize, usize), dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = dst.len() / out_w.max(1);
    assert!(out_w <= width && src.len() >= rows.saturating_sub(1) * width + out_w);
    let tail = out_w % LANES;
    let tail_mask: __mmask16 = (1u32 << tail) as u16 - 1;
    for r in 0..rows {
        let (from, to) = (src[r * width..].as_ptr(), dst[r * out_w..].as_mut_ptr());
        let full = out_w - tail;
        // SAFETY: every access lies in the row's first out_w floats, inside `src` (asserted)
        // and `dst` (rows * out_w <= dst.len()); the tail's masked lanes are not touched.
        unsafe {
            for i in (0..full).step_by(LANES) {
                _mm512_storeu_ps(to.add(i), _mm512_loadu_ps(from.add(i)));
            }
            if tail > 0 {
                let v = _mm512_maskz_loadu_ps(tail_mask, from.add(full));
                _mm512_mask_storeu_ps(to.add(full), tail_mask, v);
            }
        }
    }
}

/// [`keep_columns`] on AVX2, 8 floats at a time and the last `out_w % 8` one by one.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn keep_columns_avx2(src: &[f32], (width, out_w): (usize, usize), dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = dst.len() / out_w.max(1);
    assert!(out_w <= width && src.len() >= rows.saturating_sub(1) * width + out_w);
    let full = out_w - out_w % LANES_AVX2;
    for r in 0..rows {
        let (from, to) = (&src[r * width..][..out_w], &mut dst[r * out_w..][..out_w]);
        for i in (0..full).step_by(LANES_AVX2) {
            // SAFETY: i + 8 <= full <= out_w, the length of both rows.
            unsafe {
                _mm256_storeu_ps(
                    to.as_mut_ptr().add(i),
                    _mm256_loadu_ps(from.as_ptr().add(i)),
                )
            };
        }
        // One by one: a copy_from_slice of a few floats is a library call.
        for (t, &f) in to[full..].iter_mut().zip(&from[full..]) {
            *t = f;
        }
    }
}
