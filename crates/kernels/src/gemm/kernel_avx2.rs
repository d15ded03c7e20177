//! The AVX2+FMA micro-kernel: a 6 x 16 register tile (12 ymm accumulators, 2 for B, 1 for
//! the broadcast A value: 15 of the 16 ymm registers). See `microkernel.rs` for the contract.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::microkernel::{BPanel, CTile, Prefetch, gather_tile, scatter_tile};

/// Rows of the register tile.
pub(crate) const MR: usize = 6;
/// Columns of the register tile: two ymm vectors of 8 floats.
pub(crate) const NR: usize = 16;

/// k-steps per trip of the main loop. With one step a trip, the loop's own instructions
/// held the 6 x 16 tile to 63 GFLOP/s of an 86-90 peak (AMD EPYC Zen 3, A panel from L2,
/// B panel in L1); four steps a trip gave 71-76, and adding the A prefetch 74-79.
const UNROLL: usize = 4;

/// How far ahead (in floats, 16 steps) the main loop prefetches the A panel, which streams
/// from the L2-resident packed block while the B panel stays in L1.
const A_PREFETCH_AHEAD: usize = 16 * MR;

/// Runs the AVX2+FMA micro-kernel.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the arguments must meet [`super::microkernel::MicroKernelFn`]'s contract.
pub(crate) unsafe fn kernel(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    // A tile short of rows (the last of an m that is not a multiple of 6) runs only the rows
    // it has, and one of at most 8 columns only the first of its two vectors: the FMAs set
    // the pace, so 4 rows take two thirds of the time of 6, and 8 columns half that of 16.
    // Each element's arithmetic is the same, so are its bits.
    // SAFETY: the caller selected this kernel only after detecting AVX2 and FMA, and passes
    // panels and a tile that meet the micro-kernel contract.
    unsafe {
        if c.cols <= NR / 2 {
            kernel_rows::<true>(kc, alpha, a, b, beta, c)
        } else {
            kernel_rows::<false>(kc, alpha, a, b, beta, c)
        }
    }
}

/// [`kernel_avx2`] for the tile's rows, with `HALF` for at most 8 columns.
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
unsafe fn kernel_rows<const HALF: bool>(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: BPanel,
    beta: f32,
    c: &CTile,
) {
    // SAFETY: as this function's contract; each arm runs `c.rows` rows.
    unsafe {
        match c.rows {
            MR => kernel_avx2::<MR, HALF>(kc, alpha, a, b, beta, c),
            5 => kernel_avx2::<5, HALF>(kc, alpha, a, b, beta, c),
            4 => kernel_avx2::<4, HALF>(kc, alpha, a, b, beta, c),
            3 => kernel_avx2::<3, HALF>(kc, alpha, a, b, beta, c),
            2 => kernel_avx2::<2, HALF>(kc, alpha, a, b, beta, c),
            _ => kernel_avx2::<1, HALF>(kc, alpha, a, b, beta, c),
        }
    }
}

/// A tile of `ROWS` rows (`c.rows == ROWS`, as [`kernel_rows`] dispatches), from an A panel
/// packed `MR` wide; with `HALF`, only their first 8 columns (`c.cols <= 8`), the
/// rest of each accumulator row staying zero.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const ROWS: usize, const HALF: bool>(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: BPanel,
    beta: f32,
    c: &CTile,
) {
    debug_assert_eq!(c.rows, ROWS);
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    // Ask for the C tile before the k loop: it is needed only after it, about 6 cycles a
    // step later, which covers a miss to memory. Without this each call ended waiting on C
    // (on an AMD EPYC Zen 3, 1024^3 at 1 thread: 60 GFLOP/s, 66 % of peak).
    if c.col_stride == 1 {
        // A row of 16 (or 8) floats may straddle two cache lines: touch its first and last
        // element.
        let last = if HALF { NR / 2 - 1 } else { NR - 1 };
        for r in 0..ROWS {
            let row = c.ptr.wrapping_add(r * c.row_stride);
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(last) as *const i8);
        }
    }
    let (a, b, b_step, lines) = (a, b.ptr, b.row_stride, b.prefetch);
    if lines.lines == 0 {
        // No prefetch stream (most calls): a loop with nothing but the steps.
        // SAFETY: as this function's contract.
        unsafe { k_loop::<ROWS, HALF, false>(&mut acc, kc, a, b, b_step, lines) };
    } else {
        // SAFETY: as this function's contract.
        unsafe { k_loop::<ROWS, HALF, true>(&mut acc, kc, a, b, b_step, lines) };
    }

    if c.cols == NR && c.col_stride == 1 {
        // SAFETY: ROWS rows of 16 columns at unit column stride: each row's 16 floats are
        // contiguous and writable by the caller's contract.
        unsafe { store_rows(&acc, alpha, beta, c.ptr, c.row_stride) };
    } else {
        let mut scratch = [0.0f32; MR * NR];
        // SAFETY: the tile is readable and writable by contract; scratch holds MR * NR floats,
        // and store_rows writes ROWS <= MR rows of NR floats at row stride NR into it.
        unsafe {
            gather_tile(c, beta, &mut scratch, NR);
            store_rows(&acc, alpha, beta, scratch.as_mut_ptr(), NR);
            scatter_tile(c, &scratch, NR);
        }
    }
}

/// The `kc` steps, `UNROLL` a trip, with a prefetch of the A panel `A_PREFETCH_AHEAD`
/// floats ahead each trip (it streams from the L2-resident packed block while the B panel
/// stays in L1), and with `STREAM`, `lines`' share of the next B block a step.
///
/// # Safety
/// `a` must hold `kc * MR` readable floats and `b` `kc` rows of NR at `b_step`.
#[inline(always)]
unsafe fn k_loop<const ROWS: usize, const HALF: bool, const STREAM: bool>(
    acc: &mut [[__m256; 2]; ROWS],
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    b_step: usize,
    mut lines: Prefetch,
) {
    for _ in 0..kc / UNROLL {
        // SAFETY: a prefetch never faults, whatever the address; SSE is baseline on x86_64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_PREFETCH_AHEAD) as *const i8) };
        for u in 0..UNROLL {
            if STREAM {
                lines.step();
            }
            // SAFETY: at least UNROLL of the kc steps are left; this reads step u of them.
            unsafe { step::<ROWS, HALF>(acc, a.add(u * MR), b.add(u * b_step)) };
        }
        a = a.wrapping_add(UNROLL * MR);
        b = b.wrapping_add(UNROLL * b_step);
    }
    for _ in 0..kc % UNROLL {
        if STREAM {
            lines.step();
        }
        // SAFETY: one of the last kc % UNROLL steps.
        unsafe { step::<ROWS, HALF>(acc, a, b) };
        a = a.wrapping_add(MR);
        b = b.wrapping_add(b_step);
    }
}

/// One k-step: `acc[r] += a[r] * b[0..16]` for each of the ROWS rows (with `HALF`, only
/// the first 8 columns).
///
/// # Safety
/// `a` must hold ROWS readable floats and `b` NR.
#[inline(always)]
unsafe fn step<const ROWS: usize, const HALF: bool>(
    acc: &mut [[__m256; 2]; ROWS],
    a: *const f32,
    b: *const f32,
) {
    // SAFETY: the caller guarantees ROWS floats at `a` and NR at `b`.
    unsafe {
        let b0 = _mm256_loadu_ps(b);
        let b1 = if HALF { b0 } else { _mm256_loadu_ps(b.add(8)) };
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = _mm256_broadcast_ss(&*a.add(r));
            row[0] = _mm256_fmadd_ps(ar, b0, row[0]);
            if !HALF {
                row[1] = _mm256_fmadd_ps(ar, b1, row[1]);
            }
        }
    }
}

/// `C[r, 0..16] = alpha * acc[r] + beta * C[r, 0..16]` for each of the ROWS rows.
#[target_feature(enable = "avx2,fma")]
unsafe fn store_rows<const ROWS: usize>(
    acc: &[[__m256; 2]; ROWS],
    alpha: f32,
    beta: f32,
    c: *mut f32,
    row_stride: usize,
) {
    let va = _mm256_set1_ps(alpha);
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees ROWS rows of NR writable floats at `row_stride`.
        unsafe {
            let p = c.add(r * row_stride);
            if beta == 0.0 {
                _mm256_storeu_ps(p, _mm256_mul_ps(va, row[0]));
                _mm256_storeu_ps(p.add(8), _mm256_mul_ps(va, row[1]));
            } else {
                let vb = _mm256_set1_ps(beta);
                let c0 = _mm256_mul_ps(vb, _mm256_loadu_ps(p));
                let c1 = _mm256_mul_ps(vb, _mm256_loadu_ps(p.add(8)));
                _mm256_storeu_ps(p, _mm256_fmadd_ps(va, row[0], c0));
                _mm256_storeu_ps(p.add(8), _mm256_fmadd_ps(va, row[1], c1));
            }
        }
    }
}
