//! The forward pass over flat rows (`flat.rs`) on AVX-512 without lowering: the padded input
//! planes are read in place, 16 flat positions to a register.
//!
//! A block is `O` output channels times `P` registers of 16 consecutive flat positions, `O * P`
//! accumulators. For every tap `(c, ki, kj)` it loads the `P` registers of input at the tap's
//! constant offset and broadcasts the `O` channels' weights: `O + P` loads for `O * P` FMAs
//! (10 for 24 at 4 x 6), and no copy of the input per tap, which the GEMM path's packing
//! spends as long on as its multiply for ResNet-20's 16-channel layers.
//!
//! Every output is its bias plus the taps' products in order (input channel, kernel row,
//! kernel column), as on the channel-vectorised path, whatever the block or thread count.

use super::padded::{GroupScratch, PaddedPlanes, for_each_unit, unit_of};
use super::{Conv2d, Epilogue};

/// Registers of flat positions a block holds.
const P: usize = 6;
/// Floats of a register.
const LANES: usize = 16;
/// Output channels a block holds at most.
const MAX_OUTS: usize = 4;

impl Conv2d {
    /// `y = epilogue(conv(x, w) + bias)` over flat rows read in place (see the module docs);
    /// the caller has checked [`super::ConvPath::Flat`] serves the pass, the slice lengths,
    /// and that this CPU has AVX-512F.
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
        let blocks = flat.div_ceil(P * LANES);
        // The last block reads P * 16 floats from its first position, at the last tap's
        // offset: past the padded plane by up to that much.
        let reach = (g.kernel_h - 1) * width + g.kernel_w - 1 + blocks * P * LANES;
        let planes = PaddedPlanes::new(g, reach);
        let (gi, go, k, positions) = (g.group_in(), g.group_out(), g.col_rows(), g.positions());
        let groups = g.params.groups;
        // Tap r (input channel c, kernel row ki, column kj) reads this far from a position.
        let offsets: Vec<usize> = (0..k)
            .map(|r| {
                let (c, ki, kj) = self.tap(r);
                c * planes.len + ki * width + kj
            })
            .collect();
        let outs = (1..=MAX_OUTS.min(go))
            .rev()
            .find(|&o| go.is_multiple_of(o))
            .unwrap_or(1);
        let chunks = go / outs;
        let relu = epilogue == Epilogue::Relu;
        // A unit is `outs` output planes of one group of one image, a contiguous run of `y`;
        // its group's padded planes are per-thread scratch, copied when they change.
        let wide_len = outs * blocks * P * LANES;
        let unit = |scratch: &mut GroupScratch, (index, out): (usize, &mut [f32])| {
            let (n, group, chunk) = unit_of(index, groups, chunks);
            let (padded, wide) = scratch.planes(&planes, (g, x), (n, group), wide_len);
            let first = group * go + chunk * outs;
            let block = Block {
                padded,
                offsets: &offsets,
                weights: &w[first * k..][..outs * k],
                bias: bias.map(|b| &b[first..][..outs]),
                outs,
                relu,
            };
            for b in 0..blocks {
                // SAFETY: `forward_on` runs this path only where AVX-512F was detected;
                // `reach` covers every read of the block at position b * P * 16, and `wide`
                // holds `outs` rows of blocks * P * 16 floats.
                unsafe { run_block(&block, b * P * LANES, blocks * P * LANES, wide) };
            }
            // Keep the first out_w columns of every flat row.
            for (dst, src) in out
                .chunks_exact_mut(positions)
                .zip(wide.chunks_exact(blocks * P * LANES))
            {
                // SAFETY: as above (AVX-512F); `src` holds out_h rows of `width >= out_w`
                // floats and `dst` out_h rows of out_w.
                unsafe { keep_columns(src, (width, g.out_w), dst) };
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
    weights: &'a [f32],
    bias: Option<&'a [f32]>,
    outs: usize,
    relu: bool,
}

/// The block of flat positions `at..at + P * 16` of every output channel of `block`, into
/// `wide` (row `o` at `o * row`).
///
/// # Safety
/// The CPU must support AVX-512F; `block.padded` must hold `P * 16` floats from `at + offset`
/// for every tap's offset, and `wide` `outs` rows of `row >= at + P * 16` floats.
unsafe fn run_block(block: &Block, at: usize, row: usize, wide: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match block.outs {
            4 => block_avx512::<4>(block, at, row, wide),
            3 => block_avx512::<3>(block, at, row, wide),
            2 => block_avx512::<2>(block, at, row, wide),
            _ => block_avx512::<1>(block, at, row, wide),
        }
    }
}

/// [`run_block`] for `O` output channels.
///
/// # Safety
/// As [`run_block`].
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const O: usize>(block: &Block, at: usize, row: usize, wide: &mut [f32]) {
    use std::arch::x86_64::*;
    let k = block.offsets.len();
    assert!(block.weights.len() >= O * k && wide.len() >= O * row && at + P * LANES <= row);
    let reach = block.offsets.iter().max().copied().unwrap_or(0) + at + P * LANES;
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
