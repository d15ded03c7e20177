//! The AVX-512 micro-kernel: a 16 x 16 register tile, one zmm accumulator per row of C
//! (16 of the 32 zmm registers). Each step loads one B vector and multiplies it by 16 A
//! values broadcast straight from memory inside the FMAs (`{1to16}`), so a step issues one
//! plain load and 16 FMAs. Sixteen rows also tile the row counts of real layers (16, 64, 128,
//! 256 output channels) without a ragged edge. See `microkernel.rs` for the contract.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::microkernel::{BPanel, CTile, Prefetch, gather_tile, scatter_tile};

/// Rows of the register tile.
pub(crate) const MR: usize = 16;
/// Columns of the register tile: one zmm vector of 16 floats.
pub(crate) const NR: usize = 16;

/// Runs the AVX-512 micro-kernel.
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
    let mut acc = [_mm512_setzero_ps(); MR];
    // The C tile is needed only after the k loop: ask for it PREFETCH_STEPS steps before the
    // end (about 16 cycles a step), late enough that the packed panels streaming through L1
    // do not evict it first, early enough to cover an L2 or L3 miss.
    const PREFETCH_STEPS: usize = 32;
    let split = kc.saturating_sub(PREFETCH_STEPS);
    let step = b.row_stride;
    let mut prefetch = b.prefetch;
    // SAFETY: the panels hold kc steps; both calls together run exactly kc steps.
    let (a, bp) = unsafe { steps(&mut acc, split, a, b.ptr, step, &mut prefetch) };
    if c.col_stride == 1 {
        // A row of 16 floats may straddle two cache lines: touch its first and last element.
        for r in 0..c.rows {
            let row = c.ptr.wrapping_add(r * c.row_stride);
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1) as *const i8);
        }
    }
    // SAFETY: as above.
    unsafe { steps(&mut acc, kc - split, a, bp, step, &mut prefetch) };

    if c.rows == MR && c.cols == NR && c.col_stride == 1 {
        // SAFETY: a full tile with unit column stride: each row's 16 floats are contiguous and
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
    acc_out: &mut [__m512; MR],
    count: usize,
    a: *const f32,
    b: *const f32,
    b_step: usize,
    pf: &mut Prefetch,
) -> (*const f32, *const f32) {
    let (mut a, mut b) = (a, b);
    // Local copies, kept in registers through the loop (through the pointers, LLVM stored the
    // accumulators back every step once the prefetch stream made this function too large to
    // inline).
    let mut lines = *pf;
    let mut acc = *acc_out;
    for _ in 0..count {
        lines.step();
        // SAFETY: the caller guarantees `count` steps of MR (A) and NR (B) floats; a and b
        // advance by exactly one step per iteration.
        unsafe {
            let bv = _mm512_loadu_ps(b);
            for (r, row) in acc.iter_mut().enumerate() {
                *row = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(r)), bv, *row);
            }
            a = a.add(MR);
            b = b.wrapping_add(b_step);
        }
    }
    *pf = lines;
    *acc_out = acc;
    (a, b)
}

/// `C[r, 0..16] = alpha * acc[r] + beta * C[r, 0..16]` for each of the MR rows.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_rows(acc: &[__m512; MR], alpha: f32, beta: f32, c: *mut f32, row_stride: usize) {
    let va = _mm512_set1_ps(alpha);
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees MR rows of NR writable floats at `row_stride`.
        unsafe {
            let p = c.add(r * row_stride);
            if beta == 0.0 {
                _mm512_storeu_ps(p, _mm512_mul_ps(va, *row));
            } else {
                let old = _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_loadu_ps(p));
                _mm512_storeu_ps(p, _mm512_fmadd_ps(va, *row, old));
            }
        }
    }
}
