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
//! add a few roundings to each output, not a growth with the size of the data. The reference
//! tests hold this path to the same `(n + 8) eps sum |terms|`-style bound as every other path
//! (terms counted over the 36 taps), and `tests/conv/winograd.rs` measures it on N(0, 1)
//! inputs and weights against an f64 direct convolution: within 3x the implicit GEMM's error
//! (0.6-1.4x measured) and below 2e-6 of the largest output (2-5e-7 measured).

use std::cell::Cell;
use std::sync::Mutex;

use rayon::prelude::*;

use super::{Conv2dGeometry, Epilogue};
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
const TARGET_TILES: usize = 128;
/// Units a call is cut into at least, where it has that many rows of tiles.
const MIN_UNITS: usize = 8;

/// Transformed weights (16 per channel pair) from which packing them is spread over threads.
const PARALLEL_PACK_MIN: usize = 1 << 16;

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

/// Row `I` of `G` times the column `(a, b, c)` (`I` a constant, so each use compiles to its
/// own arithmetic).
#[inline(always)]
fn g_row<const I: usize>(a: f32, b: f32, c: f32) -> f32 {
    match I {
        0 => a,
        1 => 0.5 * (a + b + c),
        2 => 0.5 * (a - b + c),
        _ => c,
    }
}

/// `U_ξ = (G g G^T)[I][J]` for every (output, input) channel pair, as a row-major `K x C`
/// matrix into `u`.
fn transform_plane<const I: usize, const J: usize>(w: &[f32], u: &mut [f32]) {
    for (out, g) in u.iter_mut().zip(w.chunks_exact(9)) {
        // Row I of G g (G applied to each column of g), then times G^T's column J.
        let row = [
            g_row::<I>(g[0], g[3], g[6]),
            g_row::<I>(g[1], g[4], g[7]),
            g_row::<I>(g[2], g[5], g[8]),
        ];
        *out = g_row::<J>(row[0], row[1], row[2]);
    }
}

/// A weight transform: the 3x3 kernels `w` into one plane `U_ξ`.
type TransformPlane = fn(&[f32], &mut [f32]);

/// [`transform_plane`] for each `ξ = 4 I + J`.
const TRANSFORM_PLANES: [TransformPlane; XI] = [
    transform_plane::<0, 0>,
    transform_plane::<0, 1>,
    transform_plane::<0, 2>,
    transform_plane::<0, 3>,
    transform_plane::<1, 0>,
    transform_plane::<1, 1>,
    transform_plane::<1, 2>,
    transform_plane::<1, 3>,
    transform_plane::<2, 0>,
    transform_plane::<2, 1>,
    transform_plane::<2, 2>,
    transform_plane::<2, 3>,
    transform_plane::<3, 0>,
    transform_plane::<3, 1>,
    transform_plane::<3, 2>,
    transform_plane::<3, 3>,
];

/// Buffers of packed transformed weights kept between calls (at most [`SPARE_PACKS`]): a
/// fresh megabyte-sized buffer per product and call cost more in page faults than a small
/// layer's multiply (ResNet-18 at batch 1).
static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// The most packed-weight buffers [`SPARE`] keeps: one call's 16 and as many again.
const SPARE_PACKS: usize = 2 * XI;

/// `U_ξ` packed for the micro-kernel, in a recycled buffer.
fn pack_weights(isa: Isa, w: &[f32], xi: usize, k_out: usize, c_in: usize) -> Result<PackedA> {
    let mut u = SCRATCH.with(Cell::take);
    u.resize(k_out * c_in, 0.0);
    TRANSFORM_PLANES[xi](w, &mut u);
    let buffer = SPARE
        .lock()
        .map_or_else(|_| Vec::new(), |mut s| s.pop().unwrap_or_default());
    let packed = MatRef::row_major(&u, k_out, c_in).map(|a| PackedA::new_in(isa, a, buffer));
    SCRATCH.with(|cell| cell.set(u));
    packed
}

/// The geometry of the tiling.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    /// Tiles per column and per row of an output map.
    tiles_h: usize,
    tiles_w: usize,
    /// Rows of tiles over the whole batch, and per unit of work.
    rows: usize,
    rows_per_unit: usize,
    /// Micro-panel width of the packed `V`.
    nr: usize,
}

impl Tiling {
    /// Units of about [`TARGET_TILES`] tiles, but at least [`MIN_UNITS`] of them where the
    /// batch has that many rows of tiles (a single small image still feeds every thread).
    /// Both depend on the geometry only, and each output's arithmetic does not depend on
    /// which unit computes it.
    fn new(g: &Conv2dGeometry, nr: usize) -> Tiling {
        let (tiles_h, tiles_w) = (g.out_h.div_ceil(TILE), g.out_w.div_ceil(TILE));
        let rows = g.batch * tiles_h;
        Tiling {
            tiles_h,
            tiles_w,
            rows,
            rows_per_unit: (TARGET_TILES / tiles_w)
                .min(rows.div_ceil(MIN_UNITS))
                .max(1),
            nr,
        }
    }
}

/// Per-thread buffers of a unit: the packed `V`, the products `M`, and the partial
/// transforms, each laid out so that a unit's tiles (rows of tiles one after the other) are
/// one contiguous run per transform element: the arithmetic runs over long vectors even when
/// a row holds only a few tiles.
#[derive(Default)]
struct Buffers {
    v: Vec<f32>,
    m: Vec<f32>,
    /// The column transforms `(d_i B)[j]` of one input channel: 16 runs `4 i + j` of
    /// `tiles_pad` values (the padding lanes zero).
    cols: Vec<f32>,
    /// The row transforms `(A^T M)[a][j]` of one output channel: 8 runs `4 a + j` of `tiles`.
    sums: Vec<f32>,
    /// One input row with its padding (`2 (tiles_w + 1)` columns, the borders zero), and
    /// split into its even and odd columns.
    padded: Vec<f32>,
    even: Vec<f32>,
    odd: Vec<f32>,
}

thread_local! {
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
    /// One transformed weight matrix `U_ξ` before packing.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
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
    // Transforming and packing the 16 weight matrices is work proportional to the weights:
    // spread over the threads (each is independent, so the result does not depend on who
    // packs what).
    let pack = |xi: usize| pack_weights(isa, w, xi, k_out, c_in);
    let packed = if rayon::current_num_threads() > 1 && XI * k_out * c_in >= PARALLEL_PACK_MIN {
        (0..XI)
            .into_par_iter()
            .map(pack)
            .collect::<Result<Vec<PackedA>>>()?
    } else {
        (0..XI).map(pack).collect::<Result<Vec<PackedA>>>()?
    };
    let tiling = Tiling::new(g, packed[0].nr());
    let units = tiling.rows.div_ceil(tiling.rows_per_unit);
    let out = SharedOutput {
        ptr: y.as_mut_ptr(),
        len: y.len(),
    };
    let run_unit = |unit: usize| {
        let mut buffers = BUFFERS.with(|cell| cell.take());
        let first = unit * tiling.rows_per_unit;
        let last = (first + tiling.rows_per_unit).min(tiling.rows);
        run(
            g,
            &tiling,
            &packed,
            x,
            bias,
            epilogue,
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
    if let Ok(mut spare) = SPARE.lock() {
        let room = SPARE_PACKS.saturating_sub(spare.len());
        spare.extend(packed.into_iter().take(room).map(PackedA::into_data));
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
    epilogue: Epilogue,
    rows: std::ops::Range<usize>,
    buffers: &mut Buffers,
    out: &SharedOutput,
) {
    let (c_in, k_out, nr, tiles_w) = (g.in_channels, g.out_channels, tiling.nr, tiling.tiles_w);
    let tiles = rows.len() * tiles_w;
    let tiles_pad = tiles.div_ceil(nr) * nr;
    let v_len = c_in * tiles_pad;
    let Buffers {
        v,
        m,
        cols,
        sums,
        padded,
        even,
        odd,
    } = buffers;
    v.resize(XI * v_len, 0.0);
    m.resize(XI * k_out * tiles, 0.0);
    cols.resize(XI * tiles_pad, 0.0);
    sums.resize(2 * INPUT_TILE * tiles, 0.0);
    padded.clear();
    padded.resize(2 * (tiles_w + 1), 0.0);
    even.resize(tiles_w + 1, 0.0);
    odd.resize(tiles_w + 1, 0.0);
    // The padding lanes of the last panel: zero, and never written below.
    for run in cols.chunks_exact_mut(tiles_pad) {
        run[tiles..].fill(0.0);
    }
    let blocks: Vec<(usize, usize)> = packed[0].blocks().collect();

    // Input transform, channel by channel, the row transform writing straight into V's
    // micro-panels (tile t is lane t % nr of panel t / nr).
    for &(pc, kc) in &blocks {
        for c in pc..pc + kc {
            for (r, row) in rows.clone().enumerate() {
                let (n, th) = (row / tiling.tiles_h, row % tiling.tiles_h);
                let plane = &x[(n * c_in + c) * g.in_h * g.in_w..][..g.in_h * g.in_w];
                column_transforms(
                    g,
                    plane,
                    th,
                    r * tiles_w,
                    tiles_pad,
                    cols,
                    padded,
                    even,
                    odd,
                );
            }
            let lane_base = pc * tiles_pad + (c - pc) * nr;
            for j in 0..INPUT_TILE {
                let d = |i: usize| &cols[(i * INPUT_TILE + j) * tiles_pad..][..tiles_pad];
                let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                for panel in 0..tiles_pad / nr {
                    let lanes = panel * nr..(panel + 1) * nr;
                    let (d0, d1) = (&d0[lanes.clone()], &d1[lanes.clone()]);
                    let (d2, d3) = (&d2[lanes.clone()], &d3[lanes]);
                    let at = lane_base + panel * nr * kc;
                    // V[0] = d0 - d2, V[1] = d1 + d2, V[2] = d2 - d1, V[3] = d1 - d3 (rows).
                    let dst = |i: usize| (i * INPUT_TILE + j) * v_len + at;
                    combine(&mut v[dst(0)..][..nr], d0, d2, |a, b| a - b);
                    combine(&mut v[dst(1)..][..nr], d1, d2, |a, b| a + b);
                    combine(&mut v[dst(2)..][..nr], d2, d1, |a, b| a - b);
                    combine(&mut v[dst(3)..][..nr], d1, d3, |a, b| a - b);
                }
            }
        }
    }

    // The 16 products M_ξ = U_ξ V_ξ, each summed over the blocks of channels in order.
    for (xi, a) in packed.iter().enumerate() {
        let v = &v[xi * v_len..][..v_len];
        let m = &mut m[xi * k_out * tiles..][..k_out * tiles];
        for (i, &(pc, kc)) in blocks.iter().enumerate() {
            let beta = if i == 0 { 0.0 } else { 1.0 };
            let c = MatMut::row_major(m, k_out, tiles).expect("M holds K x tiles");
            multiply_packed(a, (pc, kc), &v[pc * tiles_pad..], beta, c);
        }
    }

    // Output transform, output channel by output channel: A^T over the rows of every tile
    // of the unit at once, then A over the columns a row of tiles at a time.
    let out_plane = g.out_h * g.out_w;
    for k in 0..k_out {
        let b = bias.map_or(0.0, |b| b[k]);
        let m_run = |xi: usize| &m[(xi * k_out + k) * tiles..][..tiles];
        let (s0, s1) = sums.split_at_mut(INPUT_TILE * tiles);
        for j in 0..INPUT_TILE {
            let (m0, m1, m2, m3) = (m_run(j), m_run(4 + j), m_run(8 + j), m_run(12 + j));
            let s0 = &mut s0[j * tiles..][..tiles];
            let s1 = &mut s1[j * tiles..][..tiles];
            for (((s0, s1), (m0, m1)), (m2, m3)) in s0
                .iter_mut()
                .zip(s1.iter_mut())
                .zip(m0.iter().zip(m1))
                .zip(m2.iter().zip(m3))
            {
                *s0 = m0 + m1 + m2;
                *s1 = m1 - m2 - m3;
            }
        }
        for (r, row) in rows.clone().enumerate() {
            let (n, th) = (row / tiling.tiles_h, row % tiling.tiles_h);
            for (a, s) in [&s0[..], &s1[..]].into_iter().enumerate() {
                let oh = TILE * th + a;
                if oh >= g.out_h {
                    continue;
                }
                // SAFETY: row oh of map (n, k) belongs to row of tiles `row`, which is this
                // unit's alone.
                let y = unsafe { out.run((n * k_out + k) * out_plane + oh * g.out_w, g.out_w) };
                let c = |j: usize| &s[j * tiles + r * tiles_w..][..tiles_w];
                let (c0, c1, c2, c3) = (c(0), c(1), c(2), c(3));
                let full = g.out_w / TILE;
                for (pair, ((c0, c1), (c2, c3))) in y
                    .chunks_exact_mut(TILE)
                    .zip(c0.iter().zip(c1).zip(c2.iter().zip(c3)))
                {
                    pair[0] = c0 + c1 + c2 + b;
                    pair[1] = c1 - c2 - c3 + b;
                }
                if g.out_w % TILE == 1 {
                    y[g.out_w - 1] = c0[full] + c1[full] + c2[full] + b;
                }
                epilogue.apply(y);
            }
        }
    }
}

/// The column transforms `d_i B` of the 4 input rows of row of tiles `th` of one input
/// plane, into lanes `first .. first + tiles_w` of the runs `4 i + j` of `cols` (each run
/// `stride` long). Even and odd columns of the padded row are split so that every term is a
/// contiguous run: tile tw reads columns 2 tw .. 2 tw + 3.
#[allow(clippy::too_many_arguments)]
fn column_transforms(
    g: &Conv2dGeometry,
    plane: &[f32],
    th: usize,
    first: usize,
    stride: usize,
    cols: &mut [f32],
    padded: &mut [f32],
    even: &mut [f32],
    odd: &mut [f32],
) {
    let (pad_h, pad_w) = g.params.padding;
    let tiles_w = even.len() - 1;
    for i in 0..INPUT_TILE {
        let run = |j: usize| (i * INPUT_TILE + j) * stride + first;
        let ih = (TILE * th + i) as isize - pad_h as isize;
        if ih < 0 || ih as usize >= g.in_h {
            for j in 0..INPUT_TILE {
                cols[run(j)..][..tiles_w].fill(0.0);
            }
            continue;
        }
        // The padded row (its borders stay zero), split into even and odd columns.
        padded[pad_w..pad_w + g.in_w].copy_from_slice(&plane[ih as usize * g.in_w..][..g.in_w]);
        for ((e, o), pair) in even
            .iter_mut()
            .zip(odd.iter_mut())
            .zip(padded.chunks_exact(2))
        {
            *e = pair[0];
            *o = pair[1];
        }
        let (e0, e1) = (&even[..tiles_w], &odd[..tiles_w]);
        let (e2, e3) = (&even[1..], &odd[1..]);
        combine(&mut cols[run(0)..][..tiles_w], e0, e2, |a, b| a - b);
        combine(&mut cols[run(1)..][..tiles_w], e1, e2, |a, b| a + b);
        combine(&mut cols[run(2)..][..tiles_w], e2, e1, |a, b| a - b);
        combine(&mut cols[run(3)..][..tiles_w], e1, e3, |a, b| a - b);
    }
}

/// `out[l] = f(a[l], b[l])`, written as a zip so that it compiles to vector instructions.
#[inline(always)]
fn combine(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (o, (&a, &b)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = f(a, b);
    }
}
