//! The forward pass of 3x3, stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 tile
//! of outputs takes 16 multiplications per (input, output) channel pair instead of 36, a 2.25x
//! cut in the arithmetic. The input gradient of such a layer is itself a 3x3 stride-1 forward
//! convolution (`ConvPath::Transposed`), so it comes through here too.
//!
//! With the 4x4 input tile `d`, the 3x3 filter `g` and
//!
//! ```text
//!       | 1  0 -1  0 |        |  1    0    0  |
//! B^T = | 0  1  1  0 |    G = | 1/2  1/2  1/2 |    A^T = | 1  1  1  0 |
//!       | 0 -1  1  0 |        | 1/2 -1/2  1/2 |          | 0  1 -1 -1 |
//!       | 0  1  0 -1 |        |  0    0    1  |
//! ```
//!
//! a tile of outputs is `A^T [ sum over c of (G g G^T) ⊙ (B^T d B) ] A`. The sum over input
//! channels of each of the 16 elementwise products is one GEMM per position `ξ` of the 4x4
//! transformed tile: `M_ξ (K x tiles) = U_ξ (K x C) * V_ξ (C x tiles)`, run on the GEMM
//! micro-kernel. The transformed weights `U_ξ` are packed once per call; the input transform
//! writes `V_ξ` straight into the micro-panels the micro-kernel reads.
//!
//! Work is cut into units of whole rows of tiles (about [`TARGET_TILES`] tiles, possibly
//! spanning images), which run side by side; each unit transforms its inputs, runs its 16
//! products and transforms its outputs while they are still in cache. A unit's size never
//! depends on the thread count, so results are bit-identical at any number of threads.
//!
//! **Error bound.** The transforms of F(2x2, 3x3) have coefficients 0, ±1/2 and ±1, so they
//! add a few roundings to each output, not a growth with the size of the data: on N(0, 1)
//! inputs and weights the error against an f64 direct convolution stays within a small
//! multiple of the direct method's (`tests/conv/winograd.rs` asserts the same
//! `(n + 8) eps sum |terms|`-style bound as every other path, with terms counted over the 36
//! taps, and a relative error below 1e-5 of the largest output).

use std::cell::Cell;

use rayon::prelude::*;

use super::Conv2dGeometry;
use crate::error::Result;
use crate::gemm::implicit::{PackedA, multiply_packed};
use crate::gemm::{MatMut, MatRef, PARALLEL_MIN_FLOPS};
use crate::isa::Isa;

/// Outputs per side of a tile.
const TILE: usize = 2;
/// Inputs per side of a tile (the tile plus the kernel's reach).
const INPUT_TILE: usize = 4;
/// Positions of a transformed tile: the number of products per call.
const XI: usize = INPUT_TILE * INPUT_TILE;
/// Tiles a unit of work aims at: enough columns for each packed block of `U_ξ` to be reused
/// over several micro-panels, few enough that `V` and `M` (16 floats per tile and channel)
/// stay within the core's share of the caches.
pub(super) const TARGET_TILES: usize = 128;

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

/// `U_ξ = (G g G^T)[ξ]` for every (output, input) channel pair: 16 row-major `K x C`
/// matrices, one after the other.
fn transform_weights(w: &[f32], k_out: usize, c_in: usize) -> Vec<f32> {
    let plane = k_out * c_in;
    let mut u = vec![0.0f32; XI * plane];
    for (pair, g) in w.chunks_exact(9).enumerate().take(plane) {
        // G g: 4 rows of 3.
        let mut gg = [[0.0f32; 3]; 4];
        for j in 0..3 {
            let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
            gg[0][j] = a;
            gg[1][j] = 0.5 * (a + b + c);
            gg[2][j] = 0.5 * (a - b + c);
            gg[3][j] = c;
        }
        // (G g) G^T: 4 rows of 4.
        for (i, row) in gg.iter().enumerate() {
            let [a, b, c] = *row;
            let out = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            for (j, v) in out.into_iter().enumerate() {
                u[(i * INPUT_TILE + j) * plane + pair] = v;
            }
        }
    }
    u
}

/// The geometry of the tiling.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    /// Tiles per column and per row of an output map.
    tiles_h: usize,
    tiles_w: usize,
    /// Rows of tiles per unit of work.
    rows_per_unit: usize,
    /// Micro-panel width of the packed `V`.
    nr: usize,
}

impl Tiling {
    fn new(g: &Conv2dGeometry, nr: usize) -> Tiling {
        let tiles_w = g.out_w.div_ceil(TILE);
        Tiling {
            tiles_h: g.out_h.div_ceil(TILE),
            tiles_w,
            rows_per_unit: (TARGET_TILES / tiles_w).max(1),
            nr,
        }
    }

    /// Rows of tiles over the whole batch.
    fn rows(&self, batch: usize) -> usize {
        batch * self.tiles_h
    }
}

/// Per-thread buffers of a unit: the packed `V`, the products `M`, and the transforms of one
/// row of tiles.
#[derive(Default)]
struct Buffers {
    v: Vec<f32>,
    m: Vec<f32>,
    /// 16 rows of `tiles_w`: the transformed inputs (or outputs) of one row of tiles.
    tiles: Vec<f32>,
    /// The column transforms of the 4 input rows of a row of tiles, 4 x 4 rows of `tiles_w`.
    cols: Vec<f32>,
    /// One input row split into its even and odd columns, padding included.
    even: Vec<f32>,
    odd: Vec<f32>,
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

/// `y = conv(x, w) + bias` by F(2x2, 3x3). The caller has checked the slice lengths and that
/// [`serves`] holds.
pub(super) fn forward(
    isa: Isa,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let (c_in, k_out) = (g.in_channels, g.out_channels);
    if g.batch == 0 || k_out == 0 {
        return Ok(());
    }
    if c_in == 0 {
        for (k, plane) in y.chunks_mut(g.out_h * g.out_w).enumerate() {
            plane.fill(bias.map_or(0.0, |b| b[k % k_out]));
        }
        return Ok(());
    }
    let u = transform_weights(w, k_out, c_in);
    let packed = u
        .chunks_exact(k_out * c_in)
        .map(|u_xi| Ok(PackedA::new(isa, MatRef::row_major(u_xi, k_out, c_in)?)))
        .collect::<Result<Vec<PackedA>>>()?;
    let tiling = Tiling::new(g, packed[0].nr());
    let units = tiling.rows(g.batch).div_ceil(tiling.rows_per_unit);
    let out = SharedOutput {
        ptr: y.as_mut_ptr(),
        len: y.len(),
    };
    let run_unit = |unit: usize| {
        let mut buffers = BUFFERS.with(|cell| cell.take());
        let first = unit * tiling.rows_per_unit;
        let last = (first + tiling.rows_per_unit).min(tiling.rows(g.batch));
        run(
            g,
            &tiling,
            &packed,
            x,
            bias,
            first..last,
            &mut buffers,
            &out,
        );
        BUFFERS.with(|cell| cell.set(buffers));
    };
    // 36 multiply-adds per output and channel pair, as the direct method counts them.
    if 2 * g.macs() >= PARALLEL_MIN_FLOPS && units > 1 && rayon::current_num_threads() > 1 {
        (0..units).into_par_iter().for_each(run_unit);
    } else {
        (0..units).for_each(run_unit);
    }
    Ok(())
}

/// One unit: the rows of tiles `rows` (global over the batch) from input to output.
#[allow(clippy::too_many_arguments)]
fn run(
    g: &Conv2dGeometry,
    tiling: &Tiling,
    packed: &[PackedA],
    x: &[f32],
    bias: Option<&[f32]>,
    rows: std::ops::Range<usize>,
    buffers: &mut Buffers,
    out: &SharedOutput,
) {
    let (c_in, k_out, nr, tiles_w) = (g.in_channels, g.out_channels, tiling.nr, tiling.tiles_w);
    let tiles = rows.len() * tiles_w;
    let tiles_pad = tiles.div_ceil(nr) * nr;
    let v_len = c_in * tiles_pad;
    buffers.v.resize(XI * v_len, 0.0);
    buffers.m.resize(XI * k_out * tiles, 0.0);
    buffers.tiles.resize(XI * tiles_w, 0.0);
    buffers.cols.resize(XI * tiles_w, 0.0);
    buffers.even.resize(tiles_w + 1, 0.0);
    buffers.odd.resize(tiles_w + 1, 0.0);
    let blocks: Vec<(usize, usize)> = packed[0].blocks().collect();

    // Input transform, channel by channel, straight into V's micro-panels.
    for &(pc, kc) in &blocks {
        for c in pc..pc + kc {
            let lane_base = pc * tiles_pad + (c - pc) * nr;
            for (r, row) in rows.clone().enumerate() {
                let (n, th) = (row / tiling.tiles_h, row % tiling.tiles_h);
                let plane = &x[(n * c_in + c) * g.in_h * g.in_w..][..g.in_h * g.in_w];
                transform_input_row(g, plane, th, tiles_w, buffers);
                // Scatter the 16 transformed rows of tiles into the panels, a run of
                // consecutive lanes of one panel at a time.
                for xi in 0..XI {
                    let src = &buffers.tiles[xi * tiles_w..][..tiles_w];
                    let v = &mut buffers.v[xi * v_len..][..v_len];
                    let (mut t, mut done) = (r * tiles_w, 0);
                    while done < tiles_w {
                        let (panel, lane) = (t / nr, t % nr);
                        let len = (nr - lane).min(tiles_w - done);
                        let at = lane_base + panel * nr * kc + lane;
                        v[at..at + len].copy_from_slice(&src[done..done + len]);
                        t += len;
                        done += len;
                    }
                }
            }
            // The padding columns of the last panel: finite, never stored.
            for xi in 0..XI {
                let v = &mut buffers.v[xi * v_len..][..v_len];
                for t in tiles..tiles_pad {
                    v[lane_base + (t / nr) * nr * kc + t % nr] = 0.0;
                }
            }
        }
    }

    // The 16 products M_ξ = U_ξ V_ξ, each summed over the blocks of channels in order.
    for (xi, a) in packed.iter().enumerate() {
        let v = &buffers.v[xi * v_len..][..v_len];
        let m = &mut buffers.m[xi * k_out * tiles..][..k_out * tiles];
        for (i, &(pc, kc)) in blocks.iter().enumerate() {
            let beta = if i == 0 { 0.0 } else { 1.0 };
            let c = MatMut::row_major(m, k_out, tiles).expect("M holds K x tiles");
            multiply_packed(a, (pc, kc), &v[pc * tiles_pad..], beta, c);
        }
    }

    // Output transform, output channel by output channel, a row of tiles at a time.
    let out_plane = g.out_h * g.out_w;
    for k in 0..k_out {
        let b = bias.map_or(0.0, |b| b[k]);
        for (r, row) in rows.clone().enumerate() {
            let (n, th) = (row / tiling.tiles_h, row % tiling.tiles_h);
            let m = |xi: usize| &buffers.m[(xi * k_out + k) * tiles + r * tiles_w..][..tiles_w];
            // A^T over the rows of each tile: s_a[j] for a = 0, 1 and columns j.
            let (s0, s1) = buffers.tiles.split_at_mut(INPUT_TILE * tiles_w);
            for j in 0..INPUT_TILE {
                let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
                let s0 = &mut s0[j * tiles_w..][..tiles_w];
                let s1 = &mut s1[j * tiles_w..][..tiles_w];
                for tw in 0..tiles_w {
                    s0[tw] = m0[tw] + m1[tw] + m2[tw];
                    s1[tw] = m1[tw] - m2[tw] - m3[tw];
                }
            }
            // A over the columns, into output rows 2 th and 2 th + 1.
            for (a, s) in [&s0[..], &s1[..INPUT_TILE * tiles_w]]
                .into_iter()
                .enumerate()
            {
                let oh = TILE * th + a;
                if oh >= g.out_h {
                    continue;
                }
                // SAFETY: row oh of map (n, k) belongs to row of tiles `row`, which is this
                // unit's alone.
                let y = unsafe { out.run((n * k_out + k) * out_plane + oh * g.out_w, g.out_w) };
                let (c0, c1) = (&s[..tiles_w], &s[tiles_w..2 * tiles_w]);
                let (c2, c3) = (&s[2 * tiles_w..3 * tiles_w], &s[3 * tiles_w..]);
                let full = g.out_w / TILE;
                for (tw, pair) in y.chunks_exact_mut(TILE).enumerate().take(full) {
                    pair[0] = c0[tw] + c1[tw] + c2[tw] + b;
                    pair[1] = c1[tw] - c2[tw] - c3[tw] + b;
                }
                if g.out_w % TILE == 1 {
                    y[g.out_w - 1] = c0[full] + c1[full] + c2[full] + b;
                }
            }
        }
    }
}

/// `B^T d B` for every tile of row of tiles `th` of one input plane: 16 rows of `tiles_w`
/// values into `buffers.tiles`, row `ξ = 4 i + j` holding element `(i, j)` of each tile's
/// transform.
fn transform_input_row(
    g: &Conv2dGeometry,
    plane: &[f32],
    th: usize,
    tiles_w: usize,
    buffers: &mut Buffers,
) {
    let (pad_h, pad_w) = g.params.padding;
    let Buffers {
        tiles,
        cols,
        even,
        odd,
        ..
    } = buffers;
    // Column transform of each of the 4 input rows: cols[i] holds (d_i B)[j] for each tile, j
    // by j. Even and odd columns of the padded row are split so that every term is a
    // contiguous run: tile tw reads columns 2 tw .. 2 tw + 3.
    for (i, col) in cols.chunks_exact_mut(INPUT_TILE * tiles_w).enumerate() {
        let ih = (TILE * th + i) as isize - pad_h as isize;
        if ih < 0 || ih as usize >= g.in_h {
            col.fill(0.0);
            continue;
        }
        let src = &plane[ih as usize * g.in_w..][..g.in_w];
        for (q, (e, o)) in even.iter_mut().zip(odd.iter_mut()).enumerate() {
            let at = |column: usize| {
                column
                    .checked_sub(pad_w)
                    .and_then(|iw| src.get(iw))
                    .copied()
                    .unwrap_or(0.0)
            };
            *e = at(2 * q);
            *o = at(2 * q + 1);
        }
        let (h0, rest) = col.split_at_mut(tiles_w);
        let (h1, rest) = rest.split_at_mut(tiles_w);
        let (h2, h3) = rest.split_at_mut(tiles_w);
        for tw in 0..tiles_w {
            let (e0, e1, e2, e3) = (even[tw], odd[tw], even[tw + 1], odd[tw + 1]);
            h0[tw] = e0 - e2;
            h1[tw] = e1 + e2;
            h2[tw] = e2 - e1;
            h3[tw] = e1 - e3;
        }
    }
    // Row transform: V[0] = d0 - d2, V[1] = d1 + d2, V[2] = d2 - d1, V[3] = d1 - d3 (rows).
    let row = |i: usize, j: usize| &cols[(i * INPUT_TILE + j) * tiles_w..][..tiles_w];
    for j in 0..INPUT_TILE {
        let (r0, r1, r2, r3) = (row(0, j), row(1, j), row(2, j), row(3, j));
        let (v0, rest) = tiles.split_at_mut(4 * tiles_w);
        let (v1, rest) = rest.split_at_mut(4 * tiles_w);
        let (v2, v3) = rest.split_at_mut(4 * tiles_w);
        let v0 = &mut v0[j * tiles_w..][..tiles_w];
        let v1 = &mut v1[j * tiles_w..][..tiles_w];
        let v2 = &mut v2[j * tiles_w..][..tiles_w];
        let v3 = &mut v3[j * tiles_w..][..tiles_w];
        for tw in 0..tiles_w {
            v0[tw] = r0[tw] - r2[tw];
            v1[tw] = r1[tw] + r2[tw];
            v2[tw] = r2[tw] - r1[tw];
            v3[tw] = r1[tw] - r3[tw];
        }
    }
}
