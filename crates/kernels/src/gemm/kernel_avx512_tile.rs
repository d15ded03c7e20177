//! The body every AVX-512 micro-kernel shares: an `MR x (16 * NV)` register tile, `NV` zmm
//! accumulators per row of C. Each k-step loads `NV` B vectors and broadcasts `MR` A values,
//! each feeding `NV` FMAs. Per element the arithmetic is the same for every tile shape: one
//! FMA chain over `p` in order from zero, then `alpha * acc (+ beta * C)`, so all AVX-512
//! tiles give the same bits. See `microkernel.rs` for the contract.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::microkernel::{BPanel, CTile, Prefetch, gather_tile, scatter_tile};

/// k-steps per iteration of the unrolled loop. The loop's own instructions share ports with
/// the FMAs, and four steps a turn leave them fewer slots to take: on a Xeon with two
/// 512-bit FMA ports the 12 x 32 kernel alone, its B panels streaming from L2, ran at 194
/// GFLOP/s unrolled against 172 step by step (16 x 16: 168 against 156).
const UNROLL: usize = 4;

/// Floats in the largest tile (16 x 16, 12 x 32 and 8 x 48 all fit), for the scratch tile of
/// partial and strided stores.
const MAX_TILE: usize = 16 * 32;

/// The C tile is needed only after the k loop: ask for it this many steps before the end
/// (about 12-16 cycles a step), late enough that the packed panels streaming through L1 do
/// not evict it first, early enough to cover an L2 or L3 miss.
const PREFETCH_C_STEPS: usize = 32;

/// [`tile`] on as few zmm columns as `c` needs, at most `NV`: the last panel of a block
/// whose width is not a multiple of the tile's (784 = 16 x 48 + 16 columns) then costs a
/// third of a 48-column tile, not all of it. Every element still comes from the same FMA
/// chain, so the bits are the same.
///
/// # Safety
/// As for [`tile`] with `NV` columns.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fitted_tile<const MR: usize, const NV: usize>(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: BPanel,
    beta: f32,
    c: &CTile,
) {
    // SAFETY: forwarded from the caller; fewer vectors read a prefix of each B row and cover
    // the tile's `cols <= 16 * vectors` columns.
    unsafe {
        match c.cols.div_ceil(16) {
            1 if NV > 1 => tile::<MR, 1>(kc, alpha, a, b, beta, c),
            2 if NV > 2 => tile::<MR, 2>(kc, alpha, a, b, beta, c),
            _ => tile::<MR, NV>(kc, alpha, a, b, beta, c),
        }
    }
}

/// Computes one tile: `C = alpha * A_panel · B_panel + beta * C` for the `MR x (16 * NV)`
/// tile `c`.
///
/// # Safety
/// The CPU must support AVX-512F; `a` must hold `kc` steps of MR floats and `b` `kc` rows of
/// `16 * NV` floats; `c` must describe readable and writable elements that no other thread
/// touches during the call, with `rows <= MR` and `cols <= 16 * NV`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile<const MR: usize, const NV: usize>(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: BPanel,
    beta: f32,
    c: &CTile,
) {
    let nr = 16 * NV;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let split = kc.saturating_sub(PREFETCH_C_STEPS);
    let step = b.row_stride;
    let mut prefetch = b.prefetch;
    // SAFETY: the panels hold kc steps; both calls together run exactly kc steps.
    let (a, bp) = unsafe { steps(&mut acc, split, a, b.ptr, step, &mut prefetch) };
    if c.col_stride == 1 {
        // Touch each row's first element and one in each further cache line it may reach.
        for r in 0..c.rows {
            let row = c.ptr.wrapping_add(r * c.row_stride);
            for col in (0..nr).step_by(16).chain([nr - 1]) {
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(col) as *const i8);
            }
        }
    }
    // SAFETY: as above.
    unsafe { steps(&mut acc, kc - split, a, bp, step, &mut prefetch) };

    if c.rows == MR && c.cols == nr && c.col_stride == 1 {
        // SAFETY: a full tile with unit column stride: each row's nr floats are contiguous
        // and writable by the caller's contract.
        unsafe { store_rows(&acc, alpha, beta, c.ptr, c.row_stride) };
    } else {
        let mut scratch = [0.0f32; MAX_TILE];
        let scratch = &mut scratch[..MR * nr];
        // SAFETY: the tile is readable and writable by contract; scratch holds MR * nr
        // floats, and store_rows writes MR rows of nr floats at row stride nr into it.
        unsafe {
            gather_tile(c, beta, scratch, nr);
            store_rows(&acc, alpha, beta, scratch.as_mut_ptr(), nr);
            scatter_tile(c, scratch, nr);
        }
    }
}

/// Runs `count` k-steps, returning the advanced panel pointers; each step also issues its
/// share of the prefetch stream `pf` (the next packed block's memory).
///
/// # Safety
/// `a` must hold `count` more steps of MR floats and `b` `count` rows of `16 * NV` floats,
/// `b_step` apart.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn steps<const MR: usize, const NV: usize>(
    acc_out: &mut [[__m512; NV]; MR],
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
    let mut left = count;
    while left >= UNROLL {
        // The prefetches of all UNROLL steps at once: between the steps they kept LLVM from
        // holding the accumulators in registers.
        lines.steps(UNROLL);
        for u in 0..UNROLL {
            // SAFETY: at least UNROLL steps remain in both panels (the caller's contract);
            // step `u` of this iteration lies inside them.
            unsafe { step(&mut acc, a.add(u * MR), b.wrapping_add(u * b_step)) };
        }
        a = a.wrapping_add(UNROLL * MR);
        b = b.wrapping_add(UNROLL * b_step);
        left -= UNROLL;
    }
    for _ in 0..left {
        lines.step();
        // SAFETY: as above, one step at a time.
        unsafe { step(&mut acc, a, b) };
        a = a.wrapping_add(MR);
        b = b.wrapping_add(b_step);
    }
    *pf = lines;
    *acc_out = acc;
    (a, b)
}

/// One k-step: `NV` B vectors, each row's A value broadcast into `NV` FMAs.
///
/// # Safety
/// `a` must hold MR readable floats and `b` `16 * NV`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn step<const MR: usize, const NV: usize>(
    acc: &mut [[__m512; NV]; MR],
    a: *const f32,
    b: *const f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, vector) in bv.iter_mut().enumerate() {
            *vector = _mm512_loadu_ps(b.add(16 * v));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = _mm512_set1_ps(*a.add(r));
            for (sum, vector) in row.iter_mut().zip(bv) {
                *sum = _mm512_fmadd_ps(ar, vector, *sum);
            }
        }
    }
}

/// `C[r, 0..16 * NV] = alpha * acc[r] + beta * C[r, 0..16 * NV]` for each of the MR rows.
///
/// # Safety
/// `c` must hold MR rows of `16 * NV` writable floats, `row_stride` apart.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_rows<const MR: usize, const NV: usize>(
    acc: &[[__m512; NV]; MR],
    alpha: f32,
    beta: f32,
    c: *mut f32,
    row_stride: usize,
) {
    let va = _mm512_set1_ps(alpha);
    let vb = _mm512_set1_ps(beta);
    for (r, row) in acc.iter().enumerate() {
        for (v, sum) in row.iter().enumerate() {
            // SAFETY: the caller guarantees MR rows of 16 * NV writable floats.
            unsafe {
                let p = c.add(r * row_stride + 16 * v);
                if beta == 0.0 {
                    _mm512_storeu_ps(p, _mm512_mul_ps(va, *sum));
                } else {
                    let old = _mm512_mul_ps(vb, _mm512_loadu_ps(p));
                    _mm512_storeu_ps(p, _mm512_fmadd_ps(va, *sum, old));
                }
            }
        }
    }
}
