//! Products with one row of A: a fully connected layer at batch 1, `y = x W^T`.
//!
//! Packing B would read and write all of it to use each element once. When B's columns are
//! contiguous (B is the transpose of a row-major weight matrix, as a linear layer multiplies
//! it), each output is instead one dot product of A's row with a column of B, read straight
//! from memory, and the columns are split over the threads. The speed is that of reading B.

use rayon::prelude::*;

use super::driver::RawMatMut;
use super::view::MatRef;
use crate::isa::Isa;

/// Shortest reduction worth this path: below it the product is small enough either way.
const MIN_DEPTH: usize = 64;

/// Columns of C one task computes.
const TASK_COLUMNS: usize = 64;

/// Elements of B above which the columns are split over the threads.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Lanes of the partial sums of a dot product: element `i` of the reduction goes to lane
/// `i % LANES`, and the lanes are added in a fixed tree, whatever the instruction set.
const LANES: usize = 16;

/// Whether `a * b` (`a` of `m` rows, `k` deep) takes this path.
pub(crate) fn applies(a: MatRef<'_>, b: MatRef<'_>) -> bool {
    a.rows() == 1 && a.cols() >= MIN_DEPTH && b.row_stride() == 1
}

/// `C = alpha * a * B + beta * C` for one row `a` ([`applies`] holds), on up to `threads`
/// threads. Each element is the same dot product at any thread count.
///
/// # Safety
/// `c` must describe `1 x b.cols()` writable, non-aliasing elements that no other thread
/// touches during the call; the CPU must support `isa`.
pub(crate) unsafe fn gemm_row(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: RawMatMut,
    threads: usize,
) {
    let (k, n) = (a.cols(), b.cols());
    let row: Vec<f32> = (0..k).map(|p| a.data()[p * a.col_stride()]).collect();
    let (data, col_stride) = (b.data(), b.col_stride());
    let columns = |first: usize| {
        for j in first..(first + TASK_COLUMNS).min(n) {
            let column = &data[j * col_stride..][..k];
            // SAFETY: forwarded from the caller (CPU support).
            let dot = unsafe { dot_on(isa, &row, column) };
            // SAFETY: (0, j) lies inside C, and this task alone writes columns first.. of it.
            let out = unsafe { &mut *c.offset(j * c.col_stride).ptr };
            *out = if beta == 0.0 {
                alpha * dot
            } else {
                fused(isa, alpha, dot, beta * *out)
            };
        }
    };
    if threads > 1 && k * n >= PARALLEL_MIN_ELEMENTS {
        (0..n)
            .into_par_iter()
            .step_by(TASK_COLUMNS)
            .for_each(columns);
    } else {
        (0..n).step_by(TASK_COLUMNS).for_each(columns);
    }
}

/// `x * y + z`, with one rounding where the instruction set fuses (as the micro-kernels do).
fn fused(isa: Isa, x: f32, y: f32, z: f32) -> f32 {
    if isa == Isa::Portable {
        x * y + z
    } else {
        x.mul_add(y, z)
    }
}

/// The dot product of `x` and `y` on `isa`.
///
/// # Safety
/// The CPU must support `isa`.
unsafe fn dot_on(isa: Isa, x: &[f32], y: &[f32]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked the CPU; every AVX-512 CPU also has AVX2 and FMA.
        Isa::Avx2Fma | Isa::Avx512 => unsafe { dot_fma(x, y) },
        _ => dot::<false>(x, y),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_fma(x: &[f32], y: &[f32]) -> f32 {
    dot::<true>(x, y)
}

/// [`LANES`] partial sums, then a fixed tree. `FUSED` multiply-adds round once.
#[inline(always)]
fn dot<const FUSED: bool>(x: &[f32], y: &[f32]) -> f32 {
    let madd = |a: f32, b: f32, s: f32| if FUSED { a.mul_add(b, s) } else { a * b + s };
    let mut acc = [0.0f32; LANES];
    let (xs, x_tail) = x.as_chunks::<LANES>();
    let (ys, y_tail) = y.as_chunks::<LANES>();
    for (xc, yc) in xs.iter().zip(ys) {
        for l in 0..LANES {
            acc[l] = madd(xc[l], yc[l], acc[l]);
        }
    }
    for (l, (&a, &b)) in x_tail.iter().zip(y_tail).enumerate() {
        acc[l] = madd(a, b, acc[l]);
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0]
}
