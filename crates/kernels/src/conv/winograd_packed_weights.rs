//! The transformed weights `U_ξ = G g G^T` of Winograd's F(4x4, 3x3) (see `winograd.rs`),
//! computed straight into the packed micro-panels the GEMM micro-kernel reads, from the
//! layer's weights as given or, for the input gradient, from its flipped kernels in place.

use std::cell::Cell;
use std::sync::Mutex;

use rayon::prelude::*;

use super::Conv2dGeometry;
use super::winograd::{G, INPUT_TILE, XI};
use crate::error::Result;
use crate::gemm::implicit::{PackedA, PackedLayout};
use crate::isa::Isa;
use crate::spare::{give_back, take_fitting};

/// Transformed weights (36 per channel pair) from which packing them is spread over threads.
const PARALLEL_PACK_MIN: usize = 1 << 16;

/// Where the products' 3x3 kernels come from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kernels<'a> {
    /// The weights `w[K, C, 3, 3]` as given.
    AsGiven(&'a [f32]),
    /// The input gradient's kernels read in place from the forward weights `w[C, K, 3, 3]`
    /// of the layer whose input gradient this is: channels swapped and each kernel turned
    /// 180° (as `Conv2d::flipped_weights` would copy them).
    Flipped(&'a [f32]),
}

impl Kernels<'_> {
    /// The nine taps of the kernel from input channel `c` to output channel `row` (of
    /// `rows`, over `c_in` input channels), in the order the transform takes them.
    fn taps(&self, row: usize, c: usize, rows: usize, c_in: usize) -> [f32; 9] {
        match *self {
            Kernels::AsGiven(w) => w[(row * c_in + c) * 9..][..9]
                .try_into()
                .expect("nine taps"),
            Kernels::Flipped(w) => {
                let mut taps: [f32; 9] = w[(c * rows + row) * 9..][..9]
                    .try_into()
                    .expect("nine taps");
                taps.reverse();
                taps
            }
        }
    }
}

/// `U = G g G^T` of every (output, input) channel pair, written straight into the 36 packed
/// `U_ξ` (`planes[6 I + J]` holds element `(I, J)`, laid out as `layout` says, rows past the
/// output channels zero). The kernels are first turned into nine runs over the pairs in
/// packed order (panels side by side), so that every step below is a long vector loop; the
/// six rows `I` are independent and run side by side. Packing the transforms afterwards
/// read and wrote all 36 of them again: for VGG-11's 512 -> 512 layers that was 38 MB each
/// way a pass.
fn transform_weights(
    kernels: Kernels<'_>,
    k_out: usize,
    c_in: usize,
    layout: PackedLayout,
    planes: &mut [Vec<f32>],
    taps: &mut Vec<f32>,
) {
    let len = layout.len();
    // Every element of both buffers is written below: resizing (not clearing) a recycled
    // buffer writes nothing.
    taps.resize(9 * len, 0.0);
    // The runs' stretches of one panel in one block of the reduction: `mr * kc` floats at
    // the same offset in each of the nine runs.
    let mut stretches: Vec<(usize, usize, [&mut [f32]; 9])> = Vec::new();
    let mut runs: Vec<&mut [f32]> = taps.chunks_exact_mut(len).collect();
    let mut offset = 0;
    for pc in (0..layout.k).step_by(layout.depth) {
        let kc = layout.depth.min(layout.k - pc);
        for row0 in (0..layout.m_pad).step_by(layout.mr) {
            debug_assert_eq!(offset, layout.index(row0, pc), "stretches in packed order");
            offset += layout.mr * kc;
            let pieces: Vec<&mut [f32]> = runs
                .iter_mut()
                .map(|run| {
                    let (piece, rest) = std::mem::take(run).split_at_mut(layout.mr * kc);
                    *run = rest;
                    piece
                })
                .collect();
            let pieces: [&mut [f32]; 9] = pieces.try_into().expect("nine runs");
            stretches.push((pc, row0, pieces));
        }
    }
    let fill = |(pc, row0, mut pieces): (usize, usize, [&mut [f32]; 9])| {
        let kc = pieces[0].len() / layout.mr;
        let mut q = 0;
        for c in pc..pc + kc {
            for row in row0..row0 + layout.mr {
                let values = if row < k_out {
                    kernels.taps(row, c, k_out, c_in)
                } else {
                    [0.0; 9]
                };
                for (piece, value) in pieces.iter_mut().zip(values) {
                    piece[q] = value;
                }
                q += 1;
            }
        }
    };
    if rayon::current_num_threads() > 1 && XI * len >= PARALLEL_PACK_MIN {
        stretches.into_par_iter().for_each(fill);
    } else {
        stretches.into_iter().for_each(fill);
    }
    let taps = &taps[..9 * len];
    let row = |(i, planes): (usize, &mut [Vec<f32>])| {
        // (G g)[I][col] for the three columns of a chunk of kernels, then times G^T's
        // columns; chunks keep the partial products in L1.
        const CHUNK: usize = 512;
        let mut t = [[0.0f32; CHUNK]; 3];
        for plane in planes.iter_mut() {
            plane.resize(len, 0.0);
        }
        for start in (0..len).step_by(CHUNK) {
            let n = CHUNK.min(len - start);
            let run = |tap: usize| &taps[tap * len + start..][..n];
            let [a, b, c] = G[i];
            for (col, t) in t.iter_mut().enumerate() {
                let (g0, g1, g2) = (run(col), run(3 + col), run(6 + col));
                for (t, ((g0, g1), g2)) in t.iter_mut().zip(g0.iter().zip(g1).zip(g2)) {
                    *t = a * g0 + b * g1 + c * g2;
                }
            }
            let [t0, t1, t2] = &t;
            for (j, plane) in planes.iter_mut().enumerate() {
                let [a, b, c] = G[j];
                let out = &mut plane[start..][..n];
                for (out, ((t0, t1), t2)) in out.iter_mut().zip(t0.iter().zip(t1).zip(t2)) {
                    *out = a * t0 + b * t1 + c * t2;
                }
            }
        }
    };
    if rayon::current_num_threads() > 1 && XI * len >= PARALLEL_PACK_MIN {
        planes.par_chunks_mut(INPUT_TILE).enumerate().for_each(row);
    } else {
        planes.chunks_mut(INPUT_TILE).enumerate().for_each(row);
    }
}

/// Buffers of packed transformed weights kept between calls (at most [`SPARE_PACKS`]): a
/// fresh megabyte-sized buffer per product and call cost more in page faults than a small
/// layer's multiply (ResNet-18 at batch 1).
static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// The most packed-weight buffers [`SPARE`] keeps: one call's 36 and as many again.
const SPARE_PACKS: usize = 2 * XI;

thread_local! {
    /// The kernels' taps as runs, in packed order.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The 36 packed `U_ξ` of `w` (`[K, C, 3, 3]`), for `winograd::forward` calls on the same weights.
pub(super) fn prepare(isa: Isa, g: &Conv2dGeometry, w: &[f32]) -> Result<Vec<PackedA>> {
    pack_weights(isa, Kernels::AsGiven(w), g.out_channels, g.in_channels)
}

/// The 36 `U_ξ`, transformed straight into the micro-kernel's packed layout in recycled
/// buffers (see [`transform_weights`]). The transform is work proportional to the weights:
/// spread over the threads (each element is computed the same way whoever computes it).
pub(super) fn pack_weights(
    isa: Isa,
    kernels: Kernels<'_>,
    k_out: usize,
    c_in: usize,
) -> Result<Vec<PackedA>> {
    let layout = PackedLayout::of(isa, k_out, c_in);
    let mut taps = SCRATCH.with(Cell::take);
    let mut planes: Vec<Vec<f32>> = (0..XI)
        .map(|_| take_fitting(&SPARE, layout.len()))
        .collect();
    transform_weights(kernels, k_out, c_in, layout, &mut planes, &mut taps);
    SCRATCH.with(|cell| cell.set(taps));
    Ok(planes
        .into_iter()
        .map(|plane| PackedA::from_laid_out(isa, k_out, c_in, plane))
        .collect())
}

/// Returns the buffers of packed weights made for one call to [`SPARE`], for the next call.
pub(super) fn recycle(packed: Vec<PackedA>) {
    give_back(
        &SPARE,
        packed.into_iter().map(PackedA::into_data),
        SPARE_PACKS,
    );
}
