//! The direct weight gradient of convolutions with one input channel per group (LeNet's first
//! layer, depthwise layers) at stride 1 and dilation 1.
//!
//! Lowered to a GEMM, such a layer has a handful of rows (the group's output channels) and a
//! few dozen columns (the taps) against a reduction over every position of every image, so
//! the GEMM spends its time packing and storing tiny tiles. Here each weight is instead one
//! flat dot product per image. The input plane is zero-padded to `Hp x Wp`, and each
//! output-gradient plane is copied into rows of the same width `Wp`, with zeros past the
//! `out_w` real columns. Then the tap `(ki, kj)` reads the padded input at a constant offset
//! `ki * Wp + kj` from the output position, and its weight's gradient is
//! `dot(dy_rows, padded[ki * Wp + kj..])` over `out_h * Wp` elements: the zero columns cancel
//! the positions that wrap into the next row.
//!
//! Images are summed in the same fixed segments as the GEMM path (see
//! `WEIGHT_GRADIENT_SEGMENTS` in `mod.rs`), and each dot product in a fixed lane order, so the
//! result does not depend on the thread count.

use rayon::prelude::*;

use super::geometry::Conv2dGeometry;
use crate::gemm::PARALLEL_MIN_FLOPS;
use crate::isa::Isa;

/// Lanes of the portable dot product's accumulator.
const VECTOR: usize = 8;

/// Whether [`weight_gradient`] handles this geometry: one input channel per group, stride 1
/// and dilation 1.
pub(super) fn applies(g: &Conv2dGeometry) -> bool {
    g.group_in() == 1 && g.params.stride == (1, 1) && g.params.dilation == (1, 1)
}

/// `dw = sum over images of the per-tap dot products`, overwriting `dw`. The reduction over
/// images is cut into `segments` fixed runs of whole images, summed side by side and added in
/// order. The caller has checked [`applies`] and the slice lengths.
pub(super) fn weight_gradient(
    isa: Isa,
    g: &Conv2dGeometry,
    segments: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let dot = dot_for(isa);
    let per_segment = g.batch.div_ceil(segments.max(1)).max(1);
    let run = |s: usize| {
        let mut partial = vec![0.0; dw.len()];
        let mut padded = Vec::new();
        let mut rows = Vec::new();
        let images = s * per_segment..((s + 1) * per_segment).min(g.batch);
        for n in images {
            add_image(g, n, x, dy, dot, &mut partial, &mut padded, &mut rows);
        }
        partial
    };
    let count = g.batch.div_ceil(per_segment);
    let flops = 2 * g.macs();
    let partials: Vec<Vec<f32>> = if flops >= PARALLEL_MIN_FLOPS && count > 1 {
        (0..count).into_par_iter().map(run).collect()
    } else {
        (0..count).map(run).collect()
    };
    dw.fill(0.0);
    for partial in &partials {
        for (d, v) in dw.iter_mut().zip(partial) {
            *d += v;
        }
    }
}

/// Adds image `n`'s weight gradient to `acc` (the weight's shape), using `padded` and `rows`
/// as scratch.
#[allow(clippy::too_many_arguments)]
fn add_image(
    g: &Conv2dGeometry,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dot: fn(&[f32], &[f32]) -> f32,
    acc: &mut [f32],
    padded: &mut Vec<f32>,
    rows: &mut Vec<f32>,
) {
    let (ph, pw) = g.params.padding;
    let width = g.in_w + 2 * pw;
    let height = g.in_h + 2 * ph;
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let (plane, positions, go) = (g.plane(), g.positions(), g.group_out());
    let len = g.out_h * width;
    // The last tap's dot reads `kw - 1` floats past the padded plane: zeros.
    padded.clear();
    padded.resize(height * width + kw, 0.0);
    rows.clear();
    rows.resize(len, 0.0);
    for channel in 0..g.in_channels {
        let src = &x[(n * g.in_channels + channel) * plane..][..plane];
        for (r, line) in src.chunks_exact(g.in_w).enumerate() {
            padded[(r + ph) * width + pw..][..g.in_w].copy_from_slice(line);
        }
        for o in channel * go..(channel + 1) * go {
            let src = &dy[(n * g.out_channels + o) * positions..][..positions];
            for (r, line) in src.chunks_exact(g.out_w).enumerate() {
                rows[r * width..][..g.out_w].copy_from_slice(line);
            }
            let taps = &mut acc[o * kh * kw..][..kh * kw];
            for ki in 0..kh {
                for kj in 0..kw {
                    taps[ki * kw + kj] += dot(rows, &padded[ki * width + kj..][..len]);
                }
            }
        }
    }
}

/// The dot product this instruction set runs: `sum(a[i] * b[i])` over equal lengths.
fn dot_for(isa: Isa) -> fn(&[f32], &[f32]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512 if Isa::Avx2Fma.is_supported() => dot_avx2,
        _ => dot_portable,
    }
}

/// Portable [`dot_for`]: [`VECTOR`] lanes (element `i` in lane `i % VECTOR`) added in order.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<VECTOR>();
    let (b_chunks, b_tail) = b.as_chunks::<VECTOR>();
    let mut lanes = [0.0f32; VECTOR];
    for (u, v) in a_chunks.iter().zip(b_chunks) {
        for l in 0..VECTOR {
            lanes[l] += u[l] * v[l];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(p, q)| p * q).sum();
    lanes.iter().sum::<f32>() + tail
}

/// AVX2 [`dot_for`]: four accumulators of eight lanes (element `i` in accumulator
/// `i / 8 % 4`), combined in a fixed tree, then a scalar tail.
#[cfg(target_arch = "x86_64")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of unequal lengths");
    // SAFETY: `dot_for` hands out this function only after detecting AVX2 and FMA.
    unsafe { dot_avx2_fma(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let (a_chunks, a_tail) = a.as_chunks::<32>();
    let (b_chunks, b_tail) = b.as_chunks::<32>();
    let mut acc = [_mm256_setzero_ps(); 4];
    for (u, v) in a_chunks.iter().zip(b_chunks) {
        for (r, s) in acc.iter_mut().enumerate() {
            // SAFETY: `u` and `v` are 32-float arrays, so floats `8 r .. 8 r + 8` exist.
            let (p, q) = unsafe {
                (
                    _mm256_loadu_ps(u.as_ptr().add(8 * r)),
                    _mm256_loadu_ps(v.as_ptr().add(8 * r)),
                )
            };
            *s = _mm256_fmadd_ps(p, q, *s);
        }
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let total = _mm_add_ss(pairs, _mm_movehdup_ps(pairs));
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(p, q)| p * q).sum();
    _mm_cvtss_f32(total) + tail
}
