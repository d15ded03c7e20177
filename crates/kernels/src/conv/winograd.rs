//! The forward pass of 3x3, stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3)
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 4x4 tile
//! of outputs takes 36 multiplications per (input, output) channel pair instead of 144, a 4x
//! cut in the arithmetic. The input gradient of such a layer is itself a 3x3 stride-1 forward
//! convolution (`ConvPath::Transposed`), so it comes through here too.
//!
//! With the 6x6 input tile `d`, the 3x3 filter `g` and (interpolation points 0, ±1, ±2, ∞)
//!
//! ```text
//!       | 4  0 -5  0  1  0 |        |  1/4    0     0  |
//!       | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6 |        | 1  1  1  1  1  0 |
//! B^T = | 0  4 -4 -1  1  0 |    G = | -1/6   1/6  -1/6 |  A^T = | 0  1 -1  2 -2  0 |
//!       | 0 -2 -1  2  1  0 |        | 1/24  1/12   1/6 |        | 0  1  1  4  4  0 |
//!       | 0  2 -1 -2  1  0 |        | 1/24 -1/12   1/6 |        | 0  1 -1  8 -8  1 |
//!       | 0  4  0 -5  0  1 |        |   0     0     1  |
//! ```
//!
//! a tile of outputs is `A^T [ sum over c of (G g G^T) ⊙ (B^T d B) ] A`. The sum over input
//! channels of each of the 36 elementwise products is one GEMM per position `ξ` of the 6x6
//! transformed tile: `M_ξ (K x tiles) = U_ξ (K x C) * V_ξ (C x tiles)`, run on the GEMM
//! micro-kernel. The transformed weights `U_ξ` are packed once per call; the input transform
//! writes `V_ξ` straight into the micro-panels the micro-kernel reads.
//!
//! Both transforms work on groups of [`LANES`] tiles at once, one tile per vector lane: the
//! tiles' inputs are gathered from a zero-bordered copy of their rows, transformed with
//! fixed-width arithmetic, and stored as whole micro-panel rows; the products come back as
//! runs of tiles and go out through the inverse transform the same way. No loop's length
//! depends on the width of the image, so 8x8 maps run as fast per tile as 224x224 ones.
//!
//! Work is cut into units of whole rows of tiles (possibly spanning images, sized so that a
//! unit's transformed inputs and products stay in cache), which run side by side; each unit
//! transforms its inputs, runs its 36 products and transforms its outputs while they are
//! still in cache. A unit's size never depends on the thread count, so results are
//! bit-identical at any number of threads.
//!
//! **Error bound.** The transforms of F(4x4, 3x3) have coefficients up to 8 (A) and down to
//! 1/24 (G), so each output carries a few more roundings than the direct sum, scaled by
//! those coefficients, but no growth with the size of the data. `tests/conv/winograd.rs`
//! measures it on N(0, 1) inputs and weights against an f64 direct convolution: 3.7-6.3e-6
//! of the largest output (held below 1e-5) and 10-18x the implicit GEMM's error (held within
//! 24x). The property tests hold every output within 3x the plain summation bound of its
//! tile's 6x6 input window. The layers' gradient checks and the LeNet-5 / ResNet-20 training
//! tests run through this path too.

use std::cell::Cell;

use rayon::prelude::*;

use super::winograd_packed_weights::{Kernels, pack_weights, recycle};
use super::{Conv2dGeometry, Epilogue};
use crate::error::Result;
use crate::gemm::implicit::{PackedA, multiply_packed};
use crate::gemm::{MatMut, PARALLEL_MIN_FLOPS};
use crate::isa::Isa;

/// Outputs per side of a tile.
pub(super) const TILE: usize = 4;
/// Inputs per side of a tile (the tile plus the kernel's reach).
pub(super) const INPUT_TILE: usize = TILE + 2;
/// Positions of a transformed tile: the number of products per call.
pub(super) const XI: usize = INPUT_TILE * INPUT_TILE;
/// Bytes of transformed inputs and products (`36 (C + K)` floats per tile) a unit aims at:
/// about half of a core's L2, so that each product's `V_ξ` and `M_ξ` are still cached when
/// the next stage reads them.
const UNIT_BYTES: usize = 1 << 20;
/// Bounds on the tiles of a unit: enough columns for each packed block of `U_ξ` to be reused
/// over a few micro-panels, and no more than a cache's worth for thin layers.
const MIN_UNIT_TILES: usize = 64;
const MAX_UNIT_TILES: usize = 256;
/// Units a call is cut into at least, where it has that many rows of tiles and each unit
/// keeps at least [`MIN_SHARED_TILES`] tiles.
const MIN_UNITS: usize = 8;
/// Tiles below which a unit is not cut for the sake of [`MIN_UNITS`]: every unit reads all
/// of the packed `U_ξ` (`36 K C` floats, 38 MB for 512 channels), so units of a few tiles
/// turn a wide layer's products into a stream of weights (VGG-11's 512 -> 512 layer on 4x4
/// maps at batch 64, 1 thread: 63 ms with 8-tile units, against 34 for F(2x2)).
const MIN_SHARED_TILES: usize = 64;
/// Tiles transformed together, one per lane: a micro-panel row of the AVX-512 and AVX2
/// kernels (and two of the portable kernel's, which uses [`NARROW_LANES`]).
pub(super) const LANES: usize = 16;
const NARROW_LANES: usize = 8;

/// `G` of the weight transform.
pub(super) const G: [[f32; 3]; INPUT_TILE] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Whether the Winograd path can compute the forward pass of `g`: a 3x3 kernel, stride 1,
/// dilation 1, one group.
pub(super) fn serves(g: &Conv2dGeometry) -> bool {
    let p = g.params;
    g.kernel_h == 3
        && g.kernel_w == 3
        && p.stride == (1, 1)
        && p.dilation == (1, 1)
        && p.groups == 1
        && g.out_h > 0
        && g.out_w > 0
}

/// Tiles of a call: every image's output cut into [`TILE`] x [`TILE`] blocks.
pub(super) fn tiles(g: &Conv2dGeometry) -> usize {
    g.batch * g.out_h.div_ceil(TILE) * g.out_w.div_ceil(TILE)
}

/// The geometry of the tiling.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tiling {
    /// Tiles per column and per row of an output map.
    pub(super) tiles_h: usize,
    pub(super) tiles_w: usize,
    /// Rows of tiles over the whole batch, and per unit of work.
    pub(super) rows: usize,
    pub(super) rows_per_unit: usize,
    /// Micro-panel width of the packed `V`.
    nr: usize,
}

impl Tiling {
    /// Units of about `target` tiles, but at least `min_units` of them where the batch has
    /// that many rows of tiles (a single small image still feeds every thread). Both depend
    /// on the geometry only, and each output's arithmetic does not depend on which unit
    /// computes it.
    pub(super) fn new(g: &Conv2dGeometry, nr: usize, target: usize, min_units: usize) -> Tiling {
        let (tiles_h, tiles_w) = (g.out_h.div_ceil(TILE), g.out_w.div_ceil(TILE));
        let rows = g.batch * tiles_h;
        Tiling {
            tiles_h,
            tiles_w,
            rows,
            rows_per_unit: (target / tiles_w)
                .min(
                    rows.div_ceil(min_units)
                        .max(MIN_SHARED_TILES.div_ceil(tiles_w)),
                )
                .max(1),
            nr,
        }
    }
}

/// Per-thread buffers of a unit.
#[derive(Default)]
struct Buffers {
    /// The packed `V_ξ`, one after the other.
    v: Vec<f32>,
    /// The products `M_ξ` (`K x tiles` each), one after the other.
    m: Vec<f32>,
    /// One channel's input rows as the tiles read them ([`Unit::lay_out`]).
    staged: Vec<f32>,
    /// One channel's output rows: [`TILE`] runs of `TILE` values per tile.
    out_rows: Vec<f32>,
}

thread_local! {
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

/// The output as a raw pointer, so that units writing disjoint rows of tiles can share it.
struct SharedOutput {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: units write disjoint elements of the output (each element belongs to exactly one
// tile, and each tile to exactly one unit), and the borrow of the slice outlives every unit.
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// The `len` elements from `start`, for one unit to write.
    ///
    /// # Safety
    /// No other unit may access these elements while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn run(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len, "winograd: output run out of range");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract, and the
        // output slice outlives every unit.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// `y = conv(x, w) + bias` by F(4x4, 3x3), on `prepared` (from
/// `winograd_packed_weights::prepare` of the same `w`) if given, else packing `w`'s
/// transforms for this call. The caller has checked the slice lengths and that [`serves`]
/// holds.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    isa: Isa,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    prepared: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    y: &mut [f32],
) -> Result<()> {
    let kernels = Kernels::AsGiven(w);
    forward_from(isa, g, x, kernels, prepared, bias, epilogue, y)
}

/// The input gradient `dx` of a layer with weights `w` from its output gradient `dy`, as the
/// forward pass of its transposed convolution `g` (3x3, stride 1; see [`serves`]), reading
/// the flipped kernels in place instead of from a flipped copy of `w`. The caller has
/// checked the slice lengths.
pub(super) fn input_gradient(
    isa: Isa,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let kernels = Kernels::Flipped(w);
    forward_from(isa, g, dy, kernels, None, None, Epilogue::Identity, dx)
}

/// [`forward`] from any source of kernels.
#[allow(clippy::too_many_arguments)]
fn forward_from(
    isa: Isa,
    g: &Conv2dGeometry,
    x: &[f32],
    kernels: Kernels<'_>,
    prepared: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    y: &mut [f32],
) -> Result<()> {
    let (c_in, k_out) = (g.in_channels, g.out_channels);
    if g.batch == 0 || k_out == 0 {
        return Ok(());
    }
    if c_in == 0 {
        for (k, plane) in y.chunks_mut(g.out_h * g.out_w).enumerate() {
            plane.fill(bias.map_or(0.0, |b| b[k % k_out]));
            epilogue.apply(plane);
        }
        return Ok(());
    }
    let own = match prepared {
        Some(_) => None,
        None => Some(pack_weights(isa, kernels, k_out, c_in)?),
    };
    // Exactly one of the two is set.
    let packed: &[PackedA] = own.as_deref().or(prepared).unwrap_or_default();
    // Units of about UNIT_BYTES of transformed inputs and products.
    let per_tile = 4 * XI * (c_in + k_out);
    let target = (UNIT_BYTES / per_tile).clamp(MIN_UNIT_TILES, MAX_UNIT_TILES);
    let tiling = Tiling::new(g, packed[0].nr(), target, MIN_UNITS);
    let units = tiling.rows.div_ceil(tiling.rows_per_unit);
    let out = SharedOutput {
        ptr: y.as_mut_ptr(),
        len: y.len(),
    };
    // 9 multiply-adds per output and channel pair, as the direct method counts them.
    let parallel = 2 * g.macs() >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1;
    let run_unit = |unit: usize| {
        let mut buffers = BUFFERS.with(|cell| cell.take());
        let first = unit * tiling.rows_per_unit;
        let rows = first..(first + tiling.rows_per_unit).min(tiling.rows);
        let unit = Unit {
            g,
            tiling: &tiling,
            packed,
            rows,
            share_products: parallel && units < 2 * rayon::current_num_threads(),
        };
        if tiling.nr.is_multiple_of(LANES) {
            unit.run::<LANES>(x, bias, epilogue, &mut buffers, &out);
        } else {
            unit.run::<NARROW_LANES>(x, bias, epilogue, &mut buffers, &out);
        }
        BUFFERS.with(|cell| cell.set(buffers));
    };
    if parallel && units > 1 {
        (0..units).into_par_iter().for_each(run_unit);
    } else {
        (0..units).for_each(run_unit);
    }
    if let Some(own) = own {
        recycle(own);
    }
    Ok(())
}

/// One unit of work: the rows of tiles `rows` (global over the batch).
pub(super) struct Unit<'a> {
    pub(super) g: &'a Conv2dGeometry,
    pub(super) tiling: &'a Tiling,
    /// The packed `U_ξ` (forward only; the weight gradient has none).
    pub(super) packed: &'a [PackedA],
    pub(super) rows: std::ops::Range<usize>,
    /// Whether to run the 36 products side by side (fewer units than threads).
    pub(super) share_products: bool,
}

impl Unit<'_> {
    /// Input transform, the 36 products, and output transform, with `L`-tile groups.
    fn run<const L: usize>(
        &self,
        x: &[f32],
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        buffers: &mut Buffers,
        out: &SharedOutput,
    ) {
        let (c_in, k_out, nr) = (self.g.in_channels, self.g.out_channels, self.tiling.nr);
        let tiles = self.rows.len() * self.tiling.tiles_w;
        let tiles_pad = tiles.div_ceil(nr) * nr;
        let v_len = c_in * tiles_pad;
        let Buffers {
            v,
            m,
            staged,
            out_rows,
        } = buffers;
        v.resize(XI * v_len, 0.0);
        // M_ξ's rows are padded to whole groups of lanes (the GEMM writes `tiles` of them).
        let ld = tiles.div_ceil(L) * L;
        m.resize(XI * k_out * ld, 0.0);
        let blocks: Vec<(usize, usize)> = self.packed[0].blocks().collect();
        // Channel c sits in block (pc, kc): its lanes start at `at` in each V_ξ.
        let place = |c: usize| {
            let &(pc, kc) = blocks
                .iter()
                .find(|&&(pc, kc)| (pc..pc + kc).contains(&c))
                .expect("every channel is in a block");
            (pc * tiles_pad + (c - pc) * nr, kc)
        };
        if self.share_products {
            // Channels side by side, each writing only its own lanes of V.
            let shared = SharedOutput {
                ptr: v.as_mut_ptr(),
                len: XI * v_len,
            };
            let laid_out = || {
                let mut staged = Vec::new();
                self.lay_out(tiles_pad, &mut staged);
                staged
            };
            (0..c_in)
                .into_par_iter()
                .for_each_init(laid_out, |staged, c| {
                    self.stage_channel(x, c, tiles_pad, staged);
                    let (at, kc) = place(c);
                    let mut store = |offset: usize, lanes: &[f32; L]| {
                        // SAFETY: channel c's lanes (offsets from its own `at`, within its
                        // micro-panel rows) are written by this task alone.
                        unsafe { shared.run(offset, L) }.copy_from_slice(lanes);
                    };
                    self.transform_inputs::<L>(
                        staged,
                        tiles_pad,
                        &mut store,
                        (at, v_len),
                        (nr, kc),
                    );
                });
        } else {
            self.lay_out(tiles_pad, staged);
            for c in 0..c_in {
                self.stage_channel(x, c, tiles_pad, staged);
                let (at, kc) = place(c);
                let mut store = |offset: usize, lanes: &[f32; L]| {
                    v[offset..][..L].copy_from_slice(lanes);
                };
                self.transform_inputs::<L>(staged, tiles_pad, &mut store, (at, v_len), (nr, kc));
            }
        }
        // The 36 products M_ξ = U_ξ V_ξ, each summed over the blocks of channels in order;
        // side by side where the units alone would leave threads idle (each M_ξ is one
        // task's, so the bits do not change).
        let product = |(xi, m): (usize, &mut [f32])| {
            let v = &v[xi * v_len..][..v_len];
            for (i, &(pc, kc)) in blocks.iter().enumerate() {
                let beta = if i == 0 { 0.0 } else { 1.0 };
                let c = MatMut::new(m, k_out, tiles, ld, 1).expect("M holds K x tiles");
                multiply_packed(&self.packed[xi], (pc, kc), &v[pc * tiles_pad..], beta, c);
            }
        };
        let m_all = &mut m[..XI * k_out * ld];
        if self.share_products {
            m_all
                .par_chunks_mut(k_out * ld)
                .enumerate()
                .for_each(product);
        } else {
            m_all.chunks_mut(k_out * ld).enumerate().for_each(product);
        }
        let m = &m[..];
        let output = |out_rows: &mut Vec<f32>, k: usize| {
            let b = bias.map_or(0.0, |b| b[k]);
            self.transform_outputs::<L>(m, (k, b), ld, epilogue, out_rows);
            self.write_rows(k, ld, out_rows, out);
        };
        if self.share_products {
            // Output channels side by side: each writes its own maps.
            (0..k_out)
                .into_par_iter()
                .for_each_init(|| vec![0.0; TILE * TILE * ld], output);
        } else {
            out_rows.resize(TILE * TILE * ld, 0.0);
            for k in 0..k_out {
                output(out_rows, k);
            }
        }
    }

    /// Zeroes the staging runs. Run `(i, 0)` holds row `i` of every tile's input window,
    /// columns 0-3 (four values per tile, tile after tile); run `(i, 1)` columns 4-7 (the
    /// next tile's first four, of which the window uses two). Each row of tiles fills its
    /// runs with one contiguous copy of its input row, so the gather that follows is a
    /// fixed four-way interleave whatever the width of the image. Padding (the borders,
    /// rows outside the image, lanes past the last tile) is never written and stays zero
    /// for every channel.
    pub(super) fn lay_out(&self, tiles_pad: usize, staged: &mut Vec<f32>) {
        staged.clear();
        staged.resize(2 * INPUT_TILE * TILE * tiles_pad, 0.0);
    }

    /// Copies channel `c`'s input rows under the unit's rows of tiles into the runs
    /// [`Unit::lay_out`] describes.
    #[inline(always)]
    pub(super) fn stage_channel(&self, x: &[f32], c: usize, tiles_pad: usize, staged: &mut [f32]) {
        let g = self.g;
        let (pad_h, pad_w) = g.params.padding;
        let run_len = TILE * tiles_pad;
        let span = TILE * self.tiling.tiles_w;
        for (r, row) in self.rows.clone().enumerate() {
            let (n, th) = (row / self.tiling.tiles_h, row % self.tiling.tiles_h);
            let plane = &x[(n * g.in_channels + c) * g.in_h * g.in_w..][..g.in_h * g.in_w];
            for i in 0..INPUT_TILE {
                let ih = (TILE * th + i) as isize - pad_h as isize;
                if ih < 0 || ih as usize >= g.in_h {
                    continue;
                }
                let input = &plane[ih as usize * g.in_w..][..g.in_w];
                for part in 0..2 {
                    // Run position q holds padded column shift + q: input column
                    // shift + q - pad_w.
                    let shift = TILE * part;
                    let first = shift.saturating_sub(pad_w);
                    let last = g.in_w.min((span + shift).saturating_sub(pad_w));
                    if first >= last {
                        continue;
                    }
                    let at = (2 * i + part) * run_len + r * span + first + pad_w - shift;
                    staged[at..][..last - first].copy_from_slice(&input[first..last]);
                }
            }
        }
    }

    /// `B^T d B` of every tile of one channel, `L` tiles at a time, handed to `store` with
    /// their offset in `V_ξ` (each `v_len` long, `ξ` after `ξ`): tile `t` is lane `t % nr` of the micro-panel `t / nr` of the
    /// block at `at` (whose panels are `kc x nr`). With `nr` covering every tile, the
    /// channel is one plain run from `at`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn transform_inputs<const L: usize>(
        &self,
        staged: &[f32],
        tiles_pad: usize,
        store: &mut impl FnMut(usize, &[f32; L]),
        (at, v_len): (usize, usize),
        (nr, kc): (usize, usize),
    ) {
        let run_len = TILE * tiles_pad;
        // The tiles d[i][j][lane], their row transforms, and one column's transform: whole
        // arrays written anew for every group.
        let mut d = [[[0.0f32; L]; INPUT_TILE]; INPUT_TILE];
        let mut rows = d;
        let mut column = [[0.0f32; L]; INPUT_TILE];
        for group in 0..tiles_pad / L {
            let first = group * L;
            for (i, d) in d.iter_mut().enumerate() {
                let near = &staged[2 * i * run_len + TILE * first..][..TILE * L];
                let far = &staged[(2 * i + 1) * run_len + TILE * first..][..TILE * L];
                for lane in 0..L {
                    for (j, d) in d.iter_mut().take(TILE).enumerate() {
                        d[lane] = near[TILE * lane + j];
                    }
                    d[TILE][lane] = far[TILE * lane];
                    d[TILE + 1][lane] = far[TILE * lane + 1];
                }
            }
            // Along each row (over j), then down each column (over i).
            for (d, rows) in d.iter().zip(rows.iter_mut()) {
                input_transform(d.each_ref(), rows);
            }
            let panel = at + (first / nr) * nr * kc + first % nr;
            // Column j gathers rows[i][j] over i: an index, not an iterator.
            #[allow(clippy::needless_range_loop)]
            for j in 0..INPUT_TILE {
                input_transform(std::array::from_fn(|i| &rows[i][j]), &mut column);
                for (i, lanes) in column.iter().enumerate() {
                    store((i * INPUT_TILE + j) * v_len + panel, lanes);
                }
            }
        }
    }

    /// `A^T M A` of output channel `k` for every tile, `L` tiles at a time, plus the bias,
    /// through the epilogue, into `out_rows`: run `a` holds row `a` of every tile (four
    /// values per tile, tile after tile), so that each row of tiles' outputs is one
    /// contiguous run per output row.
    #[inline(always)]
    fn transform_outputs<const L: usize>(
        &self,
        m: &[f32],
        (k, bias): (usize, f32),
        ld: usize,
        epilogue: Epilogue,
        out_rows: &mut [f32],
    ) {
        let k_out = self.g.out_channels;
        let mut mm = [[[0.0f32; L]; INPUT_TILE]; INPUT_TILE];
        let mut columns = [[[0.0f32; L]; TILE]; INPUT_TILE];
        let mut y = [[[0.0f32; L]; TILE]; TILE];
        for first in (0..ld).step_by(L) {
            // M's rows are `ld` long, a whole number of groups: every load is L lanes.
            for (xi, lane) in mm.as_flattened_mut().iter_mut().enumerate() {
                *lane = m[(xi * k_out + k) * ld + first..][..L]
                    .try_into()
                    .expect("L lanes");
            }
            // Down each column (over i), then along each row (over j).
            for (j, column) in columns.iter_mut().enumerate() {
                output_transform(std::array::from_fn(|i| &mm[i][j]), column);
            }
            for (a, y) in y.iter_mut().enumerate() {
                output_transform(std::array::from_fn(|j| &columns[j][a]), y);
            }
            for (a, y) in y.iter_mut().enumerate() {
                for lanes in y.iter_mut() {
                    for v in lanes.iter_mut() {
                        *v += bias;
                    }
                    epilogue.apply(lanes);
                }
                let run = &mut out_rows[a * TILE * ld + TILE * first..][..TILE * L];
                for lane in 0..L {
                    for (b, y) in y.iter().enumerate() {
                        run[TILE * lane + b] = y[lane];
                    }
                }
            }
        }
    }

    /// Copies output channel `k`'s rows from `out_rows` ([`Unit::transform_outputs`]) into
    /// the output: one run per output row of each row of tiles.
    fn write_rows(&self, k: usize, ld: usize, out_rows: &[f32], out: &SharedOutput) {
        let g = self.g;
        let span = TILE * self.tiling.tiles_w;
        for (r, row) in self.rows.clone().enumerate() {
            let (n, th) = (row / self.tiling.tiles_h, row % self.tiling.tiles_h);
            let plane = (n * g.out_channels + k) * g.out_h * g.out_w;
            for a in 0..TILE.min(g.out_h - TILE * th) {
                let oh = TILE * th + a;
                // SAFETY: output row oh of map (n, k) belongs to row of tiles `row`, which is
                // this unit's alone.
                let dst = unsafe { out.run(plane + oh * g.out_w, g.out_w) };
                dst.copy_from_slice(&out_rows[a * TILE * ld + r * span..][..g.out_w]);
            }
        }
    }
}

/// `o = B^T d` for one column `d` of `L` tiles.
#[inline(always)]
fn input_transform<const L: usize>(d: [&[f32; L]; INPUT_TILE], o: &mut [[f32; L]; INPUT_TILE]) {
    let [d0, d1, d2, d3, d4, d5] = d;
    for l in 0..L {
        o[0][l] = 4.0 * d0[l] - 5.0 * d2[l] + d4[l];
        o[1][l] = (d3[l] + d4[l]) - 4.0 * (d1[l] + d2[l]);
        o[2][l] = (d4[l] - d3[l]) + 4.0 * (d1[l] - d2[l]);
        o[3][l] = (d4[l] - d2[l]) + 2.0 * (d3[l] - d1[l]);
        o[4][l] = (d4[l] - d2[l]) - 2.0 * (d3[l] - d1[l]);
        o[5][l] = 4.0 * d1[l] - 5.0 * d3[l] + d5[l];
    }
}

/// `o = A^T m` for one column `m` of `L` transformed tiles.
#[inline(always)]
fn output_transform<const L: usize>(m: [&[f32; L]; INPUT_TILE], o: &mut [[f32; L]; TILE]) {
    let [m0, m1, m2, m3, m4, m5] = m;
    for l in 0..L {
        let (s12, d12) = (m1[l] + m2[l], m1[l] - m2[l]);
        let (s34, d34) = (m3[l] + m4[l], m3[l] - m4[l]);
        o[0][l] = m0[l] + s12 + s34;
        o[1][l] = d12 + 2.0 * d34;
        o[2][l] = s12 + 4.0 * s34;
        o[3][l] = d12 + 8.0 * d34 + m5[l];
    }
}
