//! The weight gradient of 3x3, stride-1 convolutions by Winograd's F(4x4, 3x3), turned
//! around (`winograd.rs` has the forward pass and the matrices).
//!
//! The forward pass maps each 4x4 output tile to `A^T [(G g G^T) ⊙ (B^T d B)] A`, linear in
//! the kernel `g`; its adjoint gives the kernel's gradient as a sum over every tile of every
//! image:
//!
//! ```text
//! dW[k][c] = G^T [ sum over tiles of (A dy_k A^T) ⊙ (B^T x_c B) ] G
//! ```
//!
//! For each position `ξ` of the 6x6 transformed tile, the sum over tiles is one GEMM with a
//! long reduction: `M_ξ (K x C) += DY_ξ (K x tiles) * V_ξ (C x tiles)^T`, 36 products
//! instead of the 144 multiply-adds per tile and channel pair of the direct sum. The inputs
//! are transformed exactly as in the forward pass; the output gradient's 4x4 tiles go through
//! `A` the same way, 16 tiles per group of lanes.
//!
//! The tiles are cut into units of whole rows of tiles, and the units into at most
//! `segments` runs, each summed in order into its own `M`, side by side; the partial sums
//! are added in order and transformed once, in f64. Neither cut depends on the thread count,
//! so the result is bit-identical at any number of threads.
//!
//! **Error.** As in the forward pass, the transforms scale values by up to 8 before summing;
//! the property tests hold each kernel's nine taps to 3x the plain summation bound of their
//! sum of magnitudes.

use std::cell::Cell;
use std::sync::Mutex;

use rayon::prelude::*;

use super::Conv2dGeometry;
use super::partition::add_in_order;
use super::winograd::{G, INPUT_TILE, LANES, TILE, Tiling, Unit, XI};
use crate::error::Result;
use crate::gemm::{MatMut, MatRef, gemm_on};
use crate::isa::Isa;
use crate::spare::{give_back, take_fitting};

/// Bytes of transformed inputs and gradients (`36 (C + K)` floats per tile) a unit aims at:
/// each product reads its two operands once, so they may stream from L3.
const UNIT_BYTES: usize = 4 << 20;
/// Bounds on the tiles of a unit. Each unit's 36 products read and write all of `M`
/// (`36 K C` floats), so a unit needs a reduction a few hundred tiles deep to amortise that
/// even when its operands outgrow the cache (VGG-11's 256 -> 256 layer on 8x8 maps at batch
/// 64, 1 thread: 77 ms with 32-tile units, against 32 ms for the implicit GEMM).
const MIN_UNIT_TILES: usize = 256;
const MAX_UNIT_TILES: usize = 2048;

/// `dw = sum over images and positions of dy * lowered x`, overwriting `dw`, by F(4x4, 3x3).
/// The caller has checked the slice lengths and that `winograd::serves(g)` holds.
pub(super) fn weight_gradient(
    isa: Isa,
    g: &Conv2dGeometry,
    segments: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    let (c_in, k_out) = (g.in_channels, g.out_channels);
    if g.batch == 0 || c_in == 0 || k_out == 0 {
        dw.fill(0.0);
        return Ok(());
    }
    let target = (UNIT_BYTES / (4 * XI * (c_in + k_out))).clamp(MIN_UNIT_TILES, MAX_UNIT_TILES);
    // As many units as `target` asks; where that is more than `segments`, rounded up to a
    // whole number per segment, so that the segments carry equal work.
    let rows = g.batch * g.out_h.div_ceil(TILE);
    let per_unit = (target / g.out_w.div_ceil(TILE)).max(1);
    let segments = segments.max(1);
    let wanted = rows.div_ceil(per_unit);
    let wanted = if wanted > segments {
        wanted.next_multiple_of(segments)
    } else {
        wanted
    };
    let tiling = Tiling::new(g, LANES, target, wanted);
    let units = tiling.rows.div_ceil(tiling.rows_per_unit);
    let per_segment = units.div_ceil(segments.min(units));
    let segments = units.div_ceil(per_segment);
    let products = XI * k_out * c_in;
    let run_segment = |s: usize| -> Result<Vec<f32>> {
        let mut m = take_fitting(&SPARE_SUMS, products);
        // The segment's first unit writes every element (its products run with beta 0), so
        // a recycled buffer is only cut or grown, never cleared: clearing 36 K C floats (38
        // MB for 512 channels) cost VGG-11's 512 -> 512 layer on 4x4 maps about a tenth of
        // its weight gradient.
        m.resize(products, 0.0);
        let mut buffers = BUFFERS.with(Cell::take);
        for unit in s * per_segment..((s + 1) * per_segment).min(units) {
            let unit_first = unit == s * per_segment;
            let first = unit * tiling.rows_per_unit;
            let unit = Unit {
                g,
                tiling: &tiling,
                packed: &[],
                rows: first..(first + tiling.rows_per_unit).min(tiling.rows),
                // Fewer segments than threads: each unit's transforms go side by side.
                share_products: segments < 2 * rayon::current_num_threads()
                    && rayon::current_num_threads() > 1,
            };
            accumulate(isa, &unit, x, dy, &mut buffers, &mut m, unit_first)?;
        }
        BUFFERS.with(|cell| cell.set(buffers));
        Ok(m)
    };
    let mut partials: Vec<Vec<f32>> = if segments > 1 && rayon::current_num_threads() > 1 {
        (0..segments)
            .into_par_iter()
            .map(run_segment)
            .collect::<Result<_>>()?
    } else {
        (0..segments).map(run_segment).collect::<Result<_>>()?
    };
    let (m, rest) = partials.split_first_mut().expect("at least one segment");
    add_in_order(m, rest.iter().map(Vec::as_slice));
    transform_sums(m, k_out * c_in, dw);
    give_back(&SPARE_SUMS, partials, SEGMENT_LIMIT);
    Ok(())
}

/// Buffers of partial sums kept between calls (at most [`SEGMENT_LIMIT`]): fresh ones cost a
/// page fault per 4 KiB, more than a small layer's products.
static SPARE_SUMS: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// The most partial-sum buffers [`SPARE_SUMS`] keeps.
const SEGMENT_LIMIT: usize = 16;

thread_local! {
    /// A segment's buffers, kept between calls for the same reason.
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

/// A segment's buffers, reused from unit to unit.
#[derive(Default)]
struct Buffers {
    /// The transformed inputs (channel after channel, each the 36 runs `V_ξ[c]`) and
    /// output gradients (likewise `DY_ξ[k]`), `tiles_pad` long each.
    v: Vec<f32>,
    dy: Vec<f32>,
    /// One input channel's rows as the tiles read them (`Unit::lay_out`), and one output
    /// channel's gradient rows ([`stage_gradient`]).
    staged: Vec<f32>,
    staged_dy: Vec<f32>,
}

/// Adds one unit's `DY_ξ V_ξ^T` to `m` (36 `K x C` matrices, `ξ` after `ξ`), or with
/// `first` writes it there, never reading what `m` held.
fn accumulate(
    isa: Isa,
    unit: &Unit<'_>,
    x: &[f32],
    dy: &[f32],
    buffers: &mut Buffers,
    m: &mut [f32],
    first: bool,
) -> Result<()> {
    let g = unit.g;
    let (c_in, k_out) = (g.in_channels, g.out_channels);
    let tiles = unit.rows.len() * unit.tiling.tiles_w;
    let tiles_pad = tiles.div_ceil(LANES) * LANES;
    let Buffers {
        v,
        dy: dyt,
        staged,
        staged_dy,
    } = buffers;
    // Channel by channel: channel c's 36 runs `V_ξ[c]` (and output channel k's `DY_ξ[k]`)
    // lie together, `tiles_pad` apart, so that channels can be transformed side by side.
    let per_channel = XI * tiles_pad;
    v.resize(c_in * per_channel, 0.0);
    dyt.resize(k_out * per_channel, 0.0);
    let v = &mut v[..c_in * per_channel];
    let dyt = &mut dyt[..k_out * per_channel];
    let inputs = |staged: &mut Vec<f32>, (c, runs): (usize, &mut [f32])| {
        unit.stage_channel(x, c, tiles_pad, staged);
        let mut store = |offset: usize, lanes: &[f32; LANES]| {
            runs[offset..][..LANES].copy_from_slice(lanes);
        };
        unit.transform_inputs::<LANES>(
            staged,
            tiles_pad,
            &mut store,
            (0, tiles_pad),
            (tiles_pad, 1),
        );
    };
    let gradients = |staged: &mut Vec<f32>, (k, runs): (usize, &mut [f32])| {
        stage_gradient(unit, dy, k, tiles_pad, staged);
        transform_gradients::<LANES>(staged, tiles_pad, runs, (0, tiles_pad));
    };
    // Run `a` of the staged gradient: row `a` of every tile, four values per tile.
    let lay_out_gradients = |staged: &mut Vec<f32>| {
        staged.clear();
        staged.resize(TILE * TILE * tiles_pad, 0.0);
    };
    if unit.share_products {
        let laid_out = || {
            let mut staged = Vec::new();
            unit.lay_out(tiles_pad, &mut staged);
            staged
        };
        v.par_chunks_mut(per_channel)
            .enumerate()
            .for_each_init(laid_out, inputs);
        let laid_out = || {
            let mut staged = Vec::new();
            lay_out_gradients(&mut staged);
            staged
        };
        dyt.par_chunks_mut(per_channel)
            .enumerate()
            .for_each_init(laid_out, gradients);
    } else {
        unit.lay_out(tiles_pad, staged);
        for item in v.chunks_mut(per_channel).enumerate() {
            inputs(staged, item);
        }
        lay_out_gradients(staged_dy);
        for item in dyt.chunks_mut(per_channel).enumerate() {
            gradients(staged_dy, item);
        }
    }
    // The 36 products, one after the other (each GEMM splits its own work; running them
    // side by side measured no faster).
    for (xi, m) in m.chunks_exact_mut(k_out * c_in).enumerate() {
        gemm_on(
            isa,
            1.0,
            product_operand(dyt, xi, k_out, tiles_pad)?,
            product_operand(v, xi, c_in, tiles_pad)?.t(),
            if first { 0.0 } else { 1.0 },
            MatMut::row_major(m, k_out, c_in)?,
        )?;
    }
    Ok(())
}

/// `V_ξ` or `DY_ξ` (`rows x tiles_pad`) in place among the channels' runs.
fn product_operand(runs: &[f32], xi: usize, rows: usize, tiles_pad: usize) -> Result<MatRef<'_>> {
    MatRef::new(&runs[xi * tiles_pad..], rows, tiles_pad, XI * tiles_pad, 1)
}

/// Copies the output-gradient rows of channel `k` under the unit's rows of tiles into run
/// `a` (row `a` of every tile, tile after tile: one contiguous copy per row of tiles);
/// columns past the output's edge, rows past its bottom and lanes past the last tile are
/// never written and stay zero.
fn stage_gradient(unit: &Unit<'_>, dy: &[f32], k: usize, tiles_pad: usize, staged: &mut [f32]) {
    let g = unit.g;
    let plane = g.out_h * g.out_w;
    let (run_len, span) = (TILE * tiles_pad, TILE * unit.tiling.tiles_w);
    for (r, row) in unit.rows.clone().enumerate() {
        let (n, th) = (row / unit.tiling.tiles_h, row % unit.tiling.tiles_h);
        let map = &dy[(n * g.out_channels + k) * plane..][..plane];
        for a in 0..TILE.min(g.out_h - TILE * th) {
            let oh = TILE * th + a;
            staged[a * run_len + r * span..][..g.out_w]
                .copy_from_slice(&map[oh * g.out_w..][..g.out_w]);
        }
    }
}

/// `A dy A^T` of every 4x4 tile of one output channel (staged by [`stage_gradient`]), `L`
/// tiles at a time, into `DY_ξ` (each
/// `len` long, `ξ` after `ξ`; this channel's run starts at `at`).
fn transform_gradients<const L: usize>(
    staged: &[f32],
    tiles_pad: usize,
    out: &mut [f32],
    (at, len): (usize, usize),
) {
    let run_len = TILE * tiles_pad;
    let mut e = [[[0.0f32; L]; TILE]; TILE];
    let mut rows = [[[0.0f32; L]; INPUT_TILE]; TILE];
    let mut column = [[0.0f32; L]; INPUT_TILE];
    for group in 0..tiles_pad / L {
        for (a, e) in e.iter_mut().enumerate() {
            let run = &staged[a * run_len + TILE * group * L..][..TILE * L];
            for lane in 0..L {
                for (b, e) in e.iter_mut().enumerate() {
                    e[lane] = run[TILE * lane + b];
                }
            }
        }
        // Along each row (over b), then down each column (over a).
        for (e, rows) in e.iter().zip(rows.iter_mut()) {
            gradient_transform(e.each_ref(), rows);
        }
        for j in 0..INPUT_TILE {
            gradient_transform(std::array::from_fn(|a| &rows[a][j]), &mut column);
            for (i, lanes) in column.iter().enumerate() {
                let dst: &mut [f32; L] = (&mut out[(i * INPUT_TILE + j) * len + at + group * L..]
                    [..L])
                    .try_into()
                    .expect("L lanes");
                *dst = *lanes;
            }
        }
    }
}

/// `o = A e` for one column `e` of `L` output-gradient tiles (`A` is `A^T` transposed: the
/// values at the interpolation points 0, 1, -1, 2, -2 and infinity).
#[inline(always)]
fn gradient_transform<const L: usize>(e: [&[f32; L]; TILE], o: &mut [[f32; L]; INPUT_TILE]) {
    let [e0, e1, e2, e3] = e;
    for l in 0..L {
        let (s02, s13) = (e0[l] + e2[l], e1[l] + e3[l]);
        let (t02, t13) = (e0[l] + 4.0 * e2[l], 2.0 * e1[l] + 8.0 * e3[l]);
        o[0][l] = e0[l];
        o[1][l] = s02 + s13;
        o[2][l] = s02 - s13;
        o[3][l] = t02 + t13;
        o[4][l] = t02 - t13;
        o[5][l] = e3[l];
    }
}

/// `dw[pair] = G^T M[pair] G` for every (output, input) channel pair, in f64 and rounded
/// once; `m` holds the 36 sums, `ξ` after `ξ`, `pairs` each. Pairs are independent, so
/// blocks of them run side by side (on one thread this took VGG-11's 512 -> 512 layer on 4x4
/// maps about a tenth of its weight gradient).
fn transform_sums(m: &[f32], pairs: usize, dw: &mut [f32]) {
    /// Pairs per parallel task.
    const PAIRS_PER_TASK: usize = 4096;
    if rayon::current_num_threads() > 1 && pairs > PAIRS_PER_TASK {
        dw.par_chunks_mut(9 * PAIRS_PER_TASK)
            .enumerate()
            .for_each(|(task, dw)| transform_pairs(m, pairs, task * PAIRS_PER_TASK, dw));
    } else {
        transform_pairs(m, pairs, 0, dw);
    }
}

/// [`transform_sums`] for the pairs from `first` on, whose kernels are `dw`.
fn transform_pairs(m: &[f32], pairs: usize, first: usize, dw: &mut [f32]) {
    for (pair, dw) in (first..).zip(dw.chunks_exact_mut(9)) {
        let sum = |i: usize, j: usize| f64::from(m[(i * INPUT_TILE + j) * pairs + pair]);
        // (G^T M)[p][j], then times G's columns.
        let mut left = [[0.0f64; INPUT_TILE]; 3];
        for (p, left) in left.iter_mut().enumerate() {
            for (j, left) in left.iter_mut().enumerate() {
                *left = (0..INPUT_TILE)
                    .map(|i| f64::from(G[i][p]) * sum(i, j))
                    .sum();
            }
        }
        for (p, left) in left.iter().enumerate() {
            for q in 0..3 {
                let value: f64 = (0..INPUT_TILE).map(|j| left[j] * f64::from(G[j][q])).sum();
                dw[p * 3 + q] = value as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    /// A segment of several units: its first unit overwrites a recycled partial-sum buffer
    /// (here full of NaN, so a unit that read it would poison the result) and the next ones
    /// add to it. 2,049 single-tile 4x4 images make two units of at most 2,048 tiles.
    #[test]
    fn a_segment_of_two_units_overwrites_then_adds() {
        let (n, c_in, k_out, side) = (2049, 2, 3, 4);
        let g = Conv2dGeometry::new(
            [n, c_in, side, side],
            [k_out, c_in, 3, 3],
            Conv2dParams::default().padding(1),
        )
        .unwrap();
        let x = crate::test_data::pattern(n * c_in * side * side, 7, 23, 8.0);
        let dy = crate::test_data::pattern(n * k_out * side * side, 5, 19, 8.0);
        let mut want = vec![0.0f64; k_out * c_in * 9];
        for img in 0..n {
            for k in 0..k_out {
                for c in 0..c_in {
                    for (tap, sum) in want[(k * c_in + c) * 9..][..9].iter_mut().enumerate() {
                        let (i, j) = (tap / 3, tap % 3);
                        for oh in 0..side {
                            for ow in 0..side {
                                let (ih, iw) = ((oh + i).wrapping_sub(1), (ow + j).wrapping_sub(1));
                                if ih < side && iw < side {
                                    let xv = x[((img * c_in + c) * side + ih) * side + iw];
                                    let dv = dy[((img * k_out + k) * side + oh) * side + ow];
                                    *sum += f64::from(xv) * f64::from(dv);
                                }
                            }
                        }
                    }
                }
            }
        }
        for isa in Isa::available() {
            SPARE_SUMS
                .lock()
                .unwrap()
                .push(vec![f32::NAN; XI * k_out * c_in]);
            let mut dw = vec![f32::NAN; want.len()];
            weight_gradient(isa, &g, 1, &x, &dy, &mut dw).unwrap();
            for (i, (&got, &want)) in dw.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() <= 1e-3 * (1.0 + want.abs()),
                    "{isa:?} dw[{i}]: {got} against {want}"
                );
            }
        }
    }
}
