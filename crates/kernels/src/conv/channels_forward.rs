//! The forward pass of [`ConvPath::Channels`] on AVX-512: direct convolution vectorised across
//! the output channels, for layers whose lowering would cost as much as their multiply (see
//! `channels.rs` for the path as a whole).
//!
//! A block of the output is `RUN` neighbouring positions of one output row times `V` registers
//! of 16 output channels, `RUN * V` accumulators in all. For every input channel and tap the
//! block loads the tap's `V` weight vectors once and multiplies each by every position's input
//! pixel, broadcast from memory: `V + RUN` loads for `RUN * V` FMAs (10 for 24 at 6 x 4), and
//! nothing is lowered. Strides only change which pixels are broadcast, so strided first
//! layers (AlexNet's 11x11 / 4, ResNet's 7x7 / 2) run here as well as narrow stride-1 ones.
//!
//! Every output is its bias plus the taps' products in one fixed order (input channel, kernel
//! row, kernel column), whatever the block shape, chunk of channels or thread count, so the
//! results do not depend on how the work is split.

use super::Conv2d;
#[cfg(doc)]
use super::ConvPath;
use super::channels::{LANES, Rows};
use super::epilogue::Epilogue;
use super::geometry::Conv2dGeometry;
use super::padded::{GroupScratch, for_each_unit, unit_of};
use crate::gemm::CacheSizes;
use crate::gemm::microkernel::{LINE_FLOATS, prefetch_l2};

/// Output-channel registers a block holds at most: 64 channels.
const MAX_VECTORS: usize = 4;

/// Accumulator registers a block holds at most, of the 32 zmm registers: the rest hold the
/// weights and the broadcast pixel.
const MAX_ACCUMULATORS: usize = 24;

/// Output positions of a channel staged before they are copied to the output at once.
const BAND_POSITIONS: usize = 64;

/// Positions a block holds for `vectors` registers of channels (at most
/// [`MAX_ACCUMULATORS`] registers in all).
fn max_run(vectors: usize) -> usize {
    match vectors {
        1 | 2 => 12,
        3 => 8,
        _ => 6,
    }
}

impl Conv2d {
    /// `y = epilogue(conv(x, w) + bias)` vectorised across output channels (see the module
    /// docs); the caller has checked [`ConvPath::Channels`] serves the pass and the slice
    /// lengths.
    pub(super) fn forward_channels(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) {
        let g = &self.geometry;
        let (shape, planes) = Rows::of(g);
        let (gi, go, k, positions) = (g.group_in(), g.group_out(), g.col_rows(), g.positions());
        // Weights as [group][c][ki][kj][o]: one tap's output channels of a group side by side.
        let mut taps = vec![0.0f32; g.params.groups * k * go];
        for (o_all, filter) in w.chunks_exact(k).enumerate() {
            let (group, o) = (o_all / go, o_all % go);
            for (r, &v) in filter.iter().enumerate() {
                taps[(group * k + r) * go + o] = v;
            }
        }
        let biases = bias.map_or_else(|| vec![0.0; g.out_channels], <[f32]>::to_vec);
        let parallel = 2 * g.macs() >= crate::gemm::PARALLEL_MIN_FLOPS;
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        let caches = CacheSizes::detect();
        let vectors = chunk_vectors(g, threads, caches.l1d);
        let chunk = vectors * LANES;
        let prefetch_out = prefetches_output(chunk * positions, caches.l2);
        let chunks_per_group = go / chunk;
        // A unit is `chunk` output planes of one group of one image: a contiguous run of `y`.
        let (out_h, out_w) = shape.out;
        let staging_len = chunk * band(out_h, out_w) * out_w;
        let unit = |scratch: &mut GroupScratch, (index, out): (usize, &mut [f32])| {
            let (n, group, c) = unit_of(index, g.params.groups, chunks_per_group);
            let c0 = c * chunk;
            let (padded, staged) = scratch.planes(&planes, (g, x), (n, group), staging_len);
            let unit = Unit {
                shape,
                padded,
                taps: &taps[group * k * go + c0..][..(k - 1) * go + chunk],
                tap_stride: go,
                bias: &biases[group * go + c0..][..chunk],
            };
            run_chunk(&unit, (vectors, prefetch_out), epilogue, staged, out);
        };
        let scratch = || GroupScratch::new(&planes, gi);
        for_each_unit(y, chunk * positions, parallel, scratch, unit);
    }
}

/// Output rows of a band: at least [`BAND_POSITIONS`] positions of a channel, at most the
/// plane.
fn band(out_h: usize, out_w: usize) -> usize {
    BAND_POSITIONS.div_ceil(out_w.max(1)).min(out_h)
}

/// Whether a unit of `unit_floats` outputs has the lines each band is copied to prefetched
/// into L2 while the band is computed: where a unit's output is at least an eighth of a
/// core's `l2` bytes. The copy of a band writes a short run into each of the unit's planes,
/// far apart in a large output, so neither the caches nor the prefetchers hold the lines and
/// every run waited for its lines from memory. On a Xeon (family 6 model 0xa7, 48 KiB L1d,
/// 2 MiB L2; batch 16, alternating in one process, bits equal) AlexNet's first layer (units
/// of 32 channels of 55 x 55, 378 KiB) ran 1.06-1.08x as fast at 1 and 2 threads, ResNet's
/// 7 x 7 stem (64 of 112 x 112) 1.20-1.30x; at 1 thread 64 channels of 48 x 48 or 56 x 56
/// ran 1.17-1.36x, and 64 of 32 x 32 (256 KiB, batch 64 and 128) 1.08-1.40x. Units of 16
/// channels of 32 x 32 (ResNet-20's first stage, 64 KiB) or 10 x 10 (LeNet-5's second layer)
/// ran 0.93-1.0x with the prefetch, their output already in cache.
fn prefetches_output(unit_floats: usize, l2: usize) -> bool {
    unit_floats * std::mem::size_of::<f32>() >= l2 / 8
}

/// Prefetches into L2 the lines of `out` that channels `channels` of a band of `len`
/// positions from `first` are copied to (each channel's plane `plane` floats long).
fn prefetch_band(
    out: &[f32],
    channels: std::ops::Range<usize>,
    plane: usize,
    first: usize,
    len: usize,
) {
    for o in channels {
        let run = &out[o * plane + first..][..len];
        // The first float of every line the run touches, and its last float's line.
        for at in (0..len).step_by(LINE_FLOATS).chain([len - 1]) {
            prefetch_l2(&run[at]);
        }
    }
}

/// Registers of output channels per unit: the most (up to [`MAX_VECTORS`]) that divide a
/// group's and whose weights (every tap's `vectors` registers) fit in `l1d` bytes, though
/// never fewer than two where two divide it; then narrowed while there are fewer units than
/// `threads` (ResNet's first layer at batch 1: 64 channels in two units of 32 on two
/// threads). Every block reads all of its unit's weights, so weights that spill from L1 are
/// read from L2 by every block: AlexNet's first layer (363 taps, 93 KiB for 64 channels)
/// ran 1.05-1.14x as fast in units of 32 channels (46 KiB) on a Xeon with a 48 KiB L1d
/// (family 6 model 0xa7, batch 16, 1 and 2 threads, alternating in one process); one
/// register (12 accumulators) was slower than either. Any choice gives the same bits.
fn chunk_vectors(g: &Conv2dGeometry, threads: usize, l1d: usize) -> usize {
    let per_group = g.group_out() / LANES;
    let divisor_up_to = |most: usize| {
        (1..=most.min(per_group))
            .rev()
            .find(|&v| per_group.is_multiple_of(v))
            .unwrap_or(1)
    };
    let weight_bytes = |vectors: usize| g.col_rows() * vectors * LANES * std::mem::size_of::<f32>();
    let mut vectors = divisor_up_to(MAX_VECTORS);
    while vectors > 2 && weight_bytes(vectors) > l1d {
        vectors = divisor_up_to(vectors - 1);
    }
    while vectors > 1 && g.batch * g.params.groups * (per_group / vectors) < threads {
        vectors = divisor_up_to(vectors - 1);
    }
    vectors
}

/// One unit: `vectors` registers of output channels (`out`, as many planes of `out_h * out_w`)
/// from one group's padded planes, staged band by band in `staged` (`vectors * 16` bands),
/// each band's lines of `out` prefetched while it is computed if `prefetch_out` (see
/// [`prefetches_output`]).
fn run_chunk(
    unit: &Unit,
    (vectors, prefetch_out): (usize, bool),
    epilogue: Epilogue,
    staged: &mut [f32],
    out: &mut [f32],
) {
    let Unit {
        shape,
        padded,
        taps,
        tap_stride: stride,
        bias,
    } = *unit;
    let (kh, kw) = shape.kernel;
    let (sy, sx) = shape.stride;
    let (out_h, out_w) = shape.out;
    let channels = vectors * LANES;
    assert!((1..=MAX_VECTORS).contains(&vectors) && out_h > 0 && out_w > 0);
    assert!(padded.len() >= shape.channels * shape.padded_len);
    let taps_count = shape.channels * kh * kw;
    assert!(taps.len() >= (taps_count - 1) * stride + channels && bias.len() >= channels);
    assert!(out.len() >= channels * out_h * out_w);
    // Every read of the padded planes stays inside them: the last tap of the last position
    // reads row (out_h - 1) * sy + kh - 1, column (out_w - 1) * sx + kw - 1.
    assert!(((out_h - 1) * sy + kh) * shape.width <= shape.padded_len);
    assert!((out_w - 1) * sx + kw <= shape.width);
    let most = max_run(vectors);
    // Runs as even as they can be: 55 positions as 5 x 6 and 5 x 5, not 9 x 6 and 1.
    let blocks = out_w.div_ceil(most);
    let relu = epilogue == Epilogue::Relu;
    let mut tile = [0.0f32; MAX_ACCUMULATORS * LANES];
    // A band of output rows of every channel of the unit, `[channel][row][ow]`, copied out
    // band by band: written straight into planes whose size is a multiple of 4 KiB (32 x 32)
    // the blocks' stores to 64 planes would all fall in one set of the L1 cache. A band is
    // at least 64 positions (a channel's rows of a plane are contiguous), so narrow rows
    // (LeNet-5's 10) are not copied 40 bytes at a time.
    let band = band(out_h, out_w);
    let band_len = band * out_w;
    assert!(staged.len() >= channels * band_len);
    for oh0 in (0..out_h).step_by(band) {
        let rows = band.min(out_h - oh0);
        let band_blocks = rows * blocks;
        let mut block = 0;
        for oh in oh0..oh0 + rows {
            let mut ow0 = 0;
            for b in 0..blocks {
                if prefetch_out {
                    // An equal share of the band's channels with every block of the band.
                    let share =
                        block * channels / band_blocks..(block + 1) * channels / band_blocks;
                    prefetch_band(out, share, out_h * out_w, oh0 * out_w, rows * out_w);
                }
                block += 1;
                let run = out_w / blocks + usize::from(b < out_w % blocks);
                let at = Position { oh, ow0 };
                // SAFETY: `forward_channels` runs only where AVX-512F was detected; the
                // asserts above bound every read of `padded`, `taps` and `bias`; run <=
                // max_run(vectors).
                unsafe { row_block(unit, at, (run, vectors), relu, &mut tile) };
                let first = staged[(oh - oh0) * out_w + ow0..].as_mut_ptr();
                // SAFETY: as above; channel o's positions ow0..ow0 + run of this row, at
                // `first + o * band_len`, lie in `staged`, which holds `channels` bands of
                // `band_len`, and `first` is taken from the rest of `staged`.
                unsafe { store_transposed(&tile, (run, vectors), first, band_len) };
                ow0 += run;
            }
        }
        for (o, values) in staged.chunks_exact(band_len).enumerate() {
            let len = rows * out_w;
            out[(o * out_h + oh0) * out_w..][..len].copy_from_slice(&values[..len]);
        }
    }
}

/// What every block of a unit (some output channels of one group of one image) reads: the
/// group's padded planes, the channels' weights (tap `t`'s at `t * tap_stride`) and biases.
#[derive(Debug, Clone, Copy)]
struct Unit<'a> {
    shape: Rows,
    padded: &'a [f32],
    taps: &'a [f32],
    tap_stride: usize,
    bias: &'a [f32],
}

/// A block's accumulators, `[position][register][16 channels]`.
type Tile = [f32; MAX_ACCUMULATORS * LANES];

/// The first output position of a block.
#[derive(Debug, Clone, Copy)]
struct Position {
    oh: usize,
    ow0: usize,
}

/// Output positions `ow0..ow0 + run` of row `oh`, `vectors` registers of channels, after ReLU
/// if `relu`, into `tile` (`[position][register][16 channels]`).
///
/// # Safety
/// The CPU must support AVX-512F, and the reads must lie inside the slices (see `run_chunk`'s
/// asserts); `run` is at most [`max_run`]`(vectors)`.
unsafe fn row_block(
    unit: &Unit,
    at: Position,
    (run, vectors): (usize, usize),
    relu: bool,
    tile: &mut Tile,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match vectors {
            1 => runs::<1>(unit, at, run, relu, tile),
            2 => runs::<2>(unit, at, run, relu, tile),
            3 => runs::<3>(unit, at, run, relu, tile),
            _ => runs::<4>(unit, at, run, relu, tile),
        }
    }
}

/// [`row_block`] for `V` registers of channels.
///
/// # Safety
/// As [`row_block`].
unsafe fn runs<const V: usize>(unit: &Unit, at: Position, run: usize, relu: bool, tile: &mut Tile) {
    // SAFETY: forwarded from the caller; each arm's run fits V (12 positions at V <= 2, 8 at
    // 3, 6 at 4).
    unsafe {
        match run {
            1 => block_avx512::<1, V>(unit, at, relu, tile),
            2 => block_avx512::<2, V>(unit, at, relu, tile),
            3 => block_avx512::<3, V>(unit, at, relu, tile),
            4 => block_avx512::<4, V>(unit, at, relu, tile),
            5 => block_avx512::<5, V>(unit, at, relu, tile),
            6 => block_avx512::<6, V>(unit, at, relu, tile),
            7 if V <= 3 => block_avx512::<7, V>(unit, at, relu, tile),
            8 if V <= 3 => block_avx512::<8, V>(unit, at, relu, tile),
            9 if V <= 2 => block_avx512::<9, V>(unit, at, relu, tile),
            10 if V <= 2 => block_avx512::<10, V>(unit, at, relu, tile),
            11 if V <= 2 => block_avx512::<11, V>(unit, at, relu, tile),
            12 if V <= 2 => block_avx512::<12, V>(unit, at, relu, tile),
            _ => unreachable!("a run of {run} positions does not fit {V} registers"),
        }
    }
}

/// [`row_block`] for a run of `RUN` positions and `V` registers of channels.
///
/// # Safety
/// As [`row_block`].
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const RUN: usize, const V: usize>(
    unit: &Unit,
    at: Position,
    relu: bool,
    tile: &mut Tile,
) {
    use std::arch::x86_64::*;
    let Unit {
        shape,
        padded,
        taps,
        tap_stride: stride,
        bias,
    } = *unit;
    let (kh, kw) = shape.kernel;
    let (sy, sx) = shape.stride;
    let (xp, tp) = (padded.as_ptr(), taps.as_ptr());
    // SAFETY: bias holds V * 16 floats (the caller's assert).
    let start: [__m512; V] =
        std::array::from_fn(|v| unsafe { _mm512_loadu_ps(bias.as_ptr().add(v * LANES)) });
    let mut acc = [start; RUN];
    let mut tap = 0;
    for c in 0..shape.channels {
        for ki in 0..kh {
            let row = c * shape.padded_len + (at.oh * sy + ki) * shape.width + at.ow0 * sx;
            for kj in 0..kw {
                // SAFETY: tap < channels * kh * kw, so its V * 16 weights at tap * stride lie
                // inside `taps`; the pixels `row + kj + j * sx` (j < RUN) lie inside the
                // padded planes (the caller's asserts bound the last one).
                unsafe {
                    let weights: [__m512; V] =
                        std::array::from_fn(|v| _mm512_loadu_ps(tp.add(tap * stride + v * LANES)));
                    for (j, a) in acc.iter_mut().enumerate() {
                        let pixel = _mm512_set1_ps(*xp.add(row + kj + j * sx));
                        for (a, wv) in a.iter_mut().zip(&weights) {
                            *a = _mm512_fmadd_ps(*wv, pixel, *a);
                        }
                    }
                }
                tap += 1;
            }
        }
    }
    if relu {
        // max(0, v) is v for NaN and -0.0, as `relu_value`.
        let zero = _mm512_setzero_ps();
        for position in acc.iter_mut() {
            for a in position.iter_mut() {
                *a = _mm512_max_ps(zero, *a);
            }
        }
    }
    assert!(RUN * V <= MAX_ACCUMULATORS);
    for (j, a) in acc.iter().enumerate() {
        for (v, a) in a.iter().enumerate() {
            // SAFETY: (j * V + v) * 16 + 16 <= RUN * V * 16 <= tile.len() (asserted).
            unsafe { _mm512_storeu_ps(tile.as_mut_ptr().add((j * V + v) * LANES), *a) };
        }
    }
}

/// Writes a block's accumulators (`tile`, `run` positions of `vectors` registers) to each
/// channel's run of positions, channel `o`'s at `first + o * stride`, four positions at a time:
/// a 4 x 4 transpose within every 128-bit lane of four registers gives each of their 16
/// channels its four positions in one 128-bit quarter, stored whole (or its first one to
/// three floats at the run's end).
///
/// # Safety
/// The CPU must support AVX-512F; `run * vectors <= MAX_ACCUMULATORS`; `run` floats at
/// `first + o * stride` are writable for every channel `o < vectors * 16`.
#[target_feature(enable = "avx512f")]
unsafe fn store_transposed(
    tile: &Tile,
    (run, vectors): (usize, usize),
    first: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    assert!(run * vectors <= MAX_ACCUMULATORS);
    let zero = _mm512_setzero_ps();
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    for j0 in (0..run).step_by(4) {
        let count = (run - j0).min(4);
        for v in 0..vectors {
            let r = |i: usize| {
                if i < count {
                    // SAFETY: (j0 + i) * vectors + v < run * vectors: inside `tile` (asserted).
                    unsafe { _mm512_loadu_ps(tile.as_ptr().add(((j0 + i) * vectors + v) * LANES)) }
                } else {
                    zero
                }
            };
            // Per 128-bit lane: t0 = p0[0] p1[0] p0[1] p1[1], t1 = p0[2] p1[2] p0[3] p1[3],
            // t2 and t3 the same for p2 and p3 (p = position, [k] = the lane's k-th channel).
            let (t0, t1) = (
                _mm512_unpacklo_ps(r(0), r(1)),
                _mm512_unpackhi_ps(r(0), r(1)),
            );
            let (t2, t3) = (
                _mm512_unpacklo_ps(r(2), r(3)),
                _mm512_unpackhi_ps(r(2), r(3)),
            );
            // by_channel[k]: per lane, channel k at positions p0..p3.
            let by_channel = [
                ps(_mm512_unpacklo_pd(pd(t0), pd(t2))),
                ps(_mm512_unpackhi_pd(pd(t0), pd(t2))),
                ps(_mm512_unpacklo_pd(pd(t1), pd(t3))),
                ps(_mm512_unpackhi_pd(pd(t1), pd(t3))),
            ];
            for (k, values) in by_channel.iter().enumerate() {
                let quarters = [
                    _mm512_extractf32x4_ps::<0>(*values),
                    _mm512_extractf32x4_ps::<1>(*values),
                    _mm512_extractf32x4_ps::<2>(*values),
                    _mm512_extractf32x4_ps::<3>(*values),
                ];
                for (lane, quarter) in quarters.into_iter().enumerate() {
                    let channel = v * LANES + 4 * lane + k;
                    // SAFETY: channel < vectors * 16 and j0 + count <= run: inside the
                    // caller's writable run of this channel.
                    unsafe {
                        let at = first.add(channel * stride + j0);
                        match count {
                            4 => _mm_storeu_ps(at, quarter),
                            3 => {
                                _mm_store_sd(at.cast(), _mm_castps_pd(quarter));
                                _mm_store_ss(at.add(2), _mm_movehl_ps(quarter, quarter));
                            }
                            2 => _mm_store_sd(at.cast(), _mm_castps_pd(quarter)),
                            _ => _mm_store_ss(at, quarter),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    fn geometry(
        input: [usize; 4],
        weight: [usize; 4],
        stride: usize,
        padding: usize,
    ) -> Conv2dGeometry {
        let params = Conv2dParams::default().stride(stride).padding(padding);
        Conv2dGeometry::new(input, weight, params).unwrap()
    }

    /// Units hold as many channels as keep their weights in L1, but at least two registers:
    /// AlexNet's first layer (363 taps) halves to 32 channels under a 48 KiB L1d and keeps
    /// 64 under a large one; ResNet's 7x7 stem (147 taps, 37 KiB for 64 channels) keeps 64;
    /// a tiny L1 never takes a unit below two registers; and one image on two threads still
    /// splits as before.
    #[test]
    fn units_keep_their_weights_in_l1() {
        let alexnet = geometry([16, 3, 224, 224], [64, 3, 11, 11], 4, 2);
        assert_eq!(chunk_vectors(&alexnet, 1, 48 << 10), 2);
        assert_eq!(chunk_vectors(&alexnet, 1, 1 << 20), 4);
        assert_eq!(chunk_vectors(&alexnet, 1, 1 << 10), 2);
        let stem = geometry([16, 3, 224, 224], [64, 3, 7, 7], 2, 3);
        assert_eq!(chunk_vectors(&stem, 1, 48 << 10), 4);
        let one_image = geometry([1, 3, 224, 224], [64, 3, 7, 7], 2, 3);
        assert_eq!(chunk_vectors(&one_image, 2, 48 << 10), 2);
        assert_eq!(chunk_vectors(&one_image, 4, 48 << 10), 1);
    }

    /// Units whose output is an eighth of L2 or more have their bands' lines prefetched:
    /// AlexNet's first layer (units of 32 channels of 55 x 55) under a 2 MiB L2 but not under
    /// a 4 MiB one, ResNet's stem (64 channels of 112 x 112) under both; ResNet-20's first stage
    /// (16 channels of 32 x 32) and LeNet-5's second layer (16 of 10 x 10) never.
    #[test]
    fn large_units_prefetch_their_output() {
        let mib = 1 << 20;
        assert!(prefetches_output(32 * 55 * 55, 2 * mib));
        assert!(!prefetches_output(32 * 55 * 55, 4 * mib));
        assert!(prefetches_output(64 * 112 * 112, 4 * mib));
        assert!(!prefetches_output(16 * 32 * 32, mib));
        assert!(!prefetches_output(16 * 10 * 10, 512 << 10));
    }

    /// A band's prefetch stays inside the output for every share of channels, up to the
    /// last position of the last plane (a slice index past it would panic).
    #[test]
    fn band_prefetch_stays_inside_the_output() {
        let (channels, plane, out_w) = (3, 7 * 5, 5);
        let out = vec![0.0f32; channels * plane];
        for first_row in 0..7 {
            for rows in 1..=7 - first_row {
                prefetch_band(&out, 0..channels, plane, first_row * out_w, rows * out_w);
            }
        }
        prefetch_band(&out, channels - 1..channels, plane, plane - 1, 1);
    }
}
