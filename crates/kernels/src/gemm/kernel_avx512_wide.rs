//! The AVX-512 micro-kernel for cores with two 512-bit FMA pipes: a 12 x 32 register tile,
//! two zmm accumulators per row of C (24 of the 32 zmm registers). Each step loads two B
//! vectors and broadcasts 12 A values, each feeding two FMAs: 14 loads per 24 FMAs (0.58 a
//! FMA), against 17 per 16 (1.06) for the 16 x 16 tile, whose broadcasts keep the load ports
//! as busy as the FMAs keep two FMA pipes. Per element the arithmetic is the 16 x 16 tile's:
//! one FMA chain over `p` in order from zero, then `alpha * acc (+ beta * C)`, so both tiles
//! give the same bits. See `microkernel.rs` for the contract.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::microkernel::{BPanel, CTile, Prefetch, gather_tile, scatter_tile};

/// Rows of the register tile.
pub(crate) const MR: usize = 12;
/// Columns of the register tile: two zmm vectors of 16 floats.
pub(crate) const NR: usize = 32;

/// Runs the 12 x 32 AVX-512 micro-kernel.
///
/// # Safety
/// The CPU must support AVX-512F, and the arguments must meet [`super::microkernel::MicroKernelFn`]'s contract.
pub(crate) unsafe fn kernel(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    // SAFETY: the caller selected this kernel only after detecting AVX-512F, and passes
    // panels and a tile that meet the micro-kernel contract.
    unsafe { kernel_avx512(kc, alpha, a, b, beta, c) }
}

#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // The C tile is needed only after the k loop: ask for it PREFETCH_STEPS steps before the
    // end (as the 16 x 16 tile does).
    const PREFETCH_STEPS: usize = 32;
    let split = kc.saturating_sub(PREFETCH_STEPS);
    let step = b.row_stride;
    let mut prefetch = b.prefetch;
    // SAFETY: the panels hold kc steps; both calls together run exactly kc steps.
    let (a, bp) = unsafe { steps(&mut acc, split, a, b.ptr, step, &mut prefetch) };
    if c.col_stride == 1 {
        // A row of 32 floats spans two or three cache lines: touch its first, middle and
        // last element.
        for r in 0..c.rows {
            let row = c.ptr.wrapping_add(r * c.row_stride);
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR / 2) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1) as *const i8);
        }
    }
    // SAFETY: as above.
    unsafe { steps(&mut acc, kc - split, a, bp, step, &mut prefetch) };

    if c.rows == MR && c.cols == NR && c.col_stride == 1 {
        // SAFETY: a full tile with unit column stride: each row's 32 floats are contiguous and
        // writable by the caller's contract.
        unsafe { store_rows(&acc, alpha, beta, c.ptr, c.row_stride) };
    } else {
        let mut scratch = [0.0f32; MR * NR];
        // SAFETY: the tile is readable and writable by contract; scratch holds MR * NR floats,
        // and store_rows writes MR rows of NR floats at row stride NR into it.
        unsafe {
            gather_tile(c, beta, &mut scratch, NR);
            store_rows(&acc, alpha, beta, scratch.as_mut_ptr(), NR);
            scatter_tile(c, &scratch, NR);
        }
    }
}

/// Runs `count` k-steps, returning the advanced panel pointers; each step also issues the
/// step's share of the prefetch stream `pf` (the next packed block's memory).
///
/// # Safety
/// `a` must hold `count` more steps of MR floats and `b` `count` rows of NR floats, `b_step`
/// apart.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn steps(
    acc_out: &mut [[__m512; 2]; MR],
    count: usize,
    a: *const f32,
    b: *const f32,
    b_step: usize,
    pf: &mut Prefetch,
) -> (*const f32, *const f32) {
    let (mut a, mut b) = (a, b);
    // Local copies, kept in registers through the loop (see the 16 x 16 kernel).
    let mut lines = *pf;
    let mut acc = *acc_out;
    for _ in 0..count {
        lines.step();
        // SAFETY: the caller guarantees `count` steps of MR (A) and NR (B) floats; a and b
        // advance by exactly one step per iteration.
        unsafe {
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a.add(r));
                row[0] = _mm512_fmadd_ps(ar, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ar, b1, row[1]);
            }
            a = a.add(MR);
            b = b.wrapping_add(b_step);
        }
    }
    *pf = lines;
    *acc_out = acc;
    (a, b)
}

/// `C[r, 0..32] = alpha * acc[r] + beta * C[r, 0..32]` for each of the MR rows.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_rows(
    acc: &[[__m512; 2]; MR],
    alpha: f32,
    beta: f32,
    c: *mut f32,
    row_stride: usize,
) {
    let va = _mm512_set1_ps(alpha);
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees MR rows of NR writable floats at `row_stride`.
        unsafe {
            let p = c.add(r * row_stride);
            if beta == 0.0 {
                _mm512_storeu_ps(p, _mm512_mul_ps(va, row[0]));
                _mm512_storeu_ps(p.add(16), _mm512_mul_ps(va, row[1]));
            } else {
                let vb = _mm512_set1_ps(beta);
                let c0 = _mm512_mul_ps(vb, _mm512_loadu_ps(p));
                let c1 = _mm512_mul_ps(vb, _mm512_loadu_ps(p.add(16)));
                _mm512_storeu_ps(p, _mm512_fmadd_ps(va, row[0], c0));
                _mm512_storeu_ps(p.add(16), _mm512_fmadd_ps(va, row[1], c1));
            }
        }
    }
}
