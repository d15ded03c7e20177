//! The AVX2+FMA micro-kernel with a 4 x 24 register tile: three ymm accumulators per row of
//! C (12 of the 16 ymm registers), three for the B vectors and one for the broadcast A
//! value, so every register is taken. Each step loads 3 B vectors and broadcasts 4 A values
//! for 12 FMAs (7 loads per 12 FMAs, against 8 for the 6 x 16 tile). With every register
//! taken LLVM spilled an accumulator each step (38 GFLOP/s on an AMD EPYC Zen 3), so the k
//! loop of a full tile is written in assembly, with the registers named; it then ran at
//! 0.94-1.02x the 6 x 16 tile's speed there, which stays the default (see `choice.rs`).
//! Per element the arithmetic is the 6 x 16 tile's: one FMA chain over `p` in order from
//! zero, then `alpha * acc (+ beta * C)`, so both tiles give the same bits. See
//! `microkernel.rs` for the contract.

#[cfg(target_arch = "x86_64")]
use std::arch::asm;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::microkernel::{BPanel, CTile, gather_tile, scatter_tile};

/// Rows of the register tile.
pub(crate) const MR: usize = 4;
/// Columns of the register tile: three ymm vectors of 8 floats.
pub(crate) const NR: usize = 24;

/// ymm vectors in a row of the tile.
const VECTORS: usize = NR / 8;

/// k-steps per trip of the assembly loop (one A prefetch a trip, as the 6 x 16 tile's).
const UNROLL: usize = 4;

/// The accumulators of a tile of at most MR rows and VECTORS vectors a row.
type Acc = [[__m256; VECTORS]; MR];

/// Runs the 4 x 24 AVX2 micro-kernel.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the arguments must meet
/// [`super::microkernel::MicroKernelFn`]'s contract.
pub(crate) unsafe fn kernel(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    // A full tile runs the assembly loop; a tile short of rows or columns (the last of an m
    // that is not a multiple of 4, or of an n that is not one of 24) runs only the rows and
    // vectors it has, in intrinsics, which leave LLVM registers to spare. The FMAs per
    // element are the same either way, so are the bits.
    // SAFETY: the caller selected this kernel only after detecting AVX2 and FMA, and passes
    // panels and a tile that meet the micro-kernel contract; each arm runs `c.rows` rows of
    // at least `c.cols` columns.
    unsafe {
        match (c.rows, c.cols.div_ceil(8)) {
            (MR, VECTORS) => full_tile(kc, alpha, a, b, beta, c),
            (rows, 1) => part_rows::<1>(rows, kc, alpha, a, b, beta, c),
            (rows, 2) => part_rows::<2>(rows, kc, alpha, a, b, beta, c),
            (rows, _) => part_rows::<VECTORS>(rows, kc, alpha, a, b, beta, c),
        }
    }
}

/// A partial tile with `VECS` vectors a row: dispatches on its rows.
///
/// # Safety
/// As [`kernel`], with `c.rows == rows` and `c.cols <= 8 * VECS`.
#[inline(always)]
unsafe fn part_rows<const VECS: usize>(
    rows: usize,
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: BPanel,
    beta: f32,
    c: &CTile,
) {
    // SAFETY: as this function's contract; each arm runs `c.rows` rows.
    unsafe {
        match rows {
            4 => part_tile::<4, VECS>(kc, alpha, a, b, beta, c),
            3 => part_tile::<3, VECS>(kc, alpha, a, b, beta, c),
            2 => part_tile::<2, VECS>(kc, alpha, a, b, beta, c),
            _ => part_tile::<1, VECS>(kc, alpha, a, b, beta, c),
        }
    }
}

/// Asks for the C tile's rows before the k loop (they are needed after it, which covers a
/// miss to memory), touching the first and last float of each row's `cols`.
#[inline(always)]
fn prefetch_c(c: &CTile, rows: usize, cols: usize) {
    if c.col_stride != 1 {
        return;
    }
    for r in 0..rows {
        let row = c.ptr.wrapping_add(r * c.row_stride);
        // SAFETY: SSE is baseline on x86_64, and a prefetch never faults, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(cols - 1) as *const i8);
        }
    }
}

/// A full 4 x 24 tile.
#[target_feature(enable = "avx2,fma")]
unsafe fn full_tile(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    prefetch_c(c, MR, NR);
    let mut acc: Acc = [[_mm256_setzero_ps(); VECTORS]; MR];
    let mut lines = b.prefetch;
    if lines.lines == 0 {
        // SAFETY: the panels hold kc steps, by this function's contract.
        unsafe { asm_steps(&mut acc, kc, a, b.ptr, b.row_stride) };
    } else {
        // A prefetch stream (cores with a large L2): a trip of UNROLL steps at a time, with
        // the trip's share of the stream issued between trips.
        let (mut a, mut bp) = (a, b.ptr);
        let mut left = kc;
        while left > 0 {
            let count = left.min(UNROLL);
            for _ in 0..count {
                lines.step();
            }
            // SAFETY: `left` steps remain in the panels; this runs `count` of them, and the
            // pointers advance past exactly those.
            unsafe { asm_steps(&mut acc, count, a, bp, b.row_stride) };
            a = a.wrapping_add(count * MR);
            bp = bp.wrapping_add(count * b.row_stride);
            left -= count;
        }
    }
    if c.cols == NR && c.col_stride == 1 {
        // SAFETY: MR rows of NR columns at unit column stride: each row's floats are
        // contiguous and writable by the caller's contract.
        unsafe { store_rows::<MR, VECTORS>(&acc, alpha, beta, c.ptr, c.row_stride) };
    } else {
        // SAFETY: the tile (MR rows, at most NR columns) is readable and writable by the
        // caller's contract.
        unsafe { store_through_scratch::<MR, VECTORS>(&acc, alpha, beta, c) };
    }
}

/// One k-step of the full tile in assembly (for [`asm_steps`]): load the step's 3 B
/// vectors, then for each of the 4 rows broadcast its A value and multiply-add it into the
/// row's 3 accumulators; advance A by a step (16 bytes) and B by `{b_bytes}`.
macro_rules! full_tile_step {
    () => {
        concat!(
            "vmovups ymm12, ymmword ptr [{b}]\n",
            "vmovups ymm13, ymmword ptr [{b} + 32]\n",
            "vmovups ymm14, ymmword ptr [{b} + 64]\n",
            "vbroadcastss ymm15, dword ptr [{a}]\n",
            "vfmadd231ps ymm0, ymm15, ymm12\n",
            "vfmadd231ps ymm1, ymm15, ymm13\n",
            "vfmadd231ps ymm2, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [{a} + 4]\n",
            "vfmadd231ps ymm3, ymm15, ymm12\n",
            "vfmadd231ps ymm4, ymm15, ymm13\n",
            "vfmadd231ps ymm5, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [{a} + 8]\n",
            "vfmadd231ps ymm6, ymm15, ymm12\n",
            "vfmadd231ps ymm7, ymm15, ymm13\n",
            "vfmadd231ps ymm8, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [{a} + 12]\n",
            "vfmadd231ps ymm9, ymm15, ymm12\n",
            "vfmadd231ps ymm10, ymm15, ymm13\n",
            "vfmadd231ps ymm11, ymm15, ymm14\n",
            "add {a}, 16\n",
            "add {b}, {b_bytes}\n",
        )
    };
}

/// `count` k-steps of the full tile, in assembly with the 16 ymm registers named: ymm0-11
/// accumulate (row r, vector v in ymm(3r + v)), ymm12-14 hold the step's B vectors and
/// ymm15 the broadcast A value.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` must hold `count * MR` readable floats and `b`
/// `count` rows of NR readable floats, `b_step` floats apart.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn asm_steps(acc: &mut Acc, count: usize, a: *const f32, b: *const f32, b_step: usize) {
    let [
        [c00, c01, c02],
        [c10, c11, c12],
        [c20, c21, c22],
        [c30, c31, c32],
    ] = acc;
    let trips = count / UNROLL;
    let rest = count % UNROLL;
    // The loads read `count` steps of MR floats from `a` and NR from `b`, `b_step` apart; the
    // prefetch is a hint that never faults; every register changed is an operand or clobber.
    // SAFETY: the caller guarantees those floats readable; the block writes no memory.
    unsafe {
        asm!(
            "test {trips}, {trips}",
            "jz 3f",
            "2:",
            // One line of A, 16 steps ahead (as the 6 x 16 tile): it streams from L2.
            "prefetcht0 [{a} + 256]",
            ".rept 4",
            full_tile_step!(),
            ".endr",
            "dec {trips}",
            "jnz 2b",
            "3:",
            "test {rest}, {rest}",
            "jz 5f",
            "4:",
            full_tile_step!(),
            "dec {rest}",
            "jnz 4b",
            "5:",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            b_bytes = in(reg) b_step * 4,
            trips = inout(reg) trips => _,
            rest = inout(reg) rest => _,
            inout("ymm0") *c00,
            inout("ymm1") *c01,
            inout("ymm2") *c02,
            inout("ymm3") *c10,
            inout("ymm4") *c11,
            inout("ymm5") *c12,
            inout("ymm6") *c20,
            inout("ymm7") *c21,
            inout("ymm8") *c22,
            inout("ymm9") *c30,
            inout("ymm10") *c31,
            inout("ymm11") *c32,
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack, readonly),
        );
    }
}

/// A tile of `ROWS` rows (`c.rows == ROWS`) and `VECS` vectors a row (`c.cols <= 8 * VECS`),
/// from an A panel packed MR wide and a B panel NR wide; the other accumulators stay zero.
#[target_feature(enable = "avx2,fma")]
unsafe fn part_tile<const ROWS: usize, const VECS: usize>(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: BPanel,
    beta: f32,
    c: &CTile,
) {
    debug_assert!(c.rows == ROWS && c.cols <= 8 * VECS);
    prefetch_c(c, ROWS, 8 * VECS);
    let mut acc = [[_mm256_setzero_ps(); VECS]; ROWS];
    let (mut a, mut bp, b_step, mut lines) = (a, b.ptr, b.row_stride, b.prefetch);
    for _ in 0..kc {
        lines.step();
        // SAFETY: the panels hold kc steps of MR (A) and NR (B) floats; a and b advance by
        // one step an iteration, and this reads ROWS <= MR and 8 * VECS <= NR of them.
        unsafe {
            let mut bv = [_mm256_setzero_ps(); VECS];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(8 * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*a.add(r));
                for (x, bx) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(ar, *bx, *x);
                }
            }
            a = a.add(MR);
            bp = bp.wrapping_add(b_step);
        }
    }
    if ROWS == MR && VECS == VECTORS && c.cols == NR && c.col_stride == 1 {
        // SAFETY: MR rows of NR contiguous writable floats, by the caller's contract.
        unsafe { store_rows::<ROWS, VECS>(&acc, alpha, beta, c.ptr, c.row_stride) };
    } else {
        // SAFETY: the tile is readable and writable by the caller's contract.
        unsafe { store_through_scratch::<ROWS, VECS>(&acc, alpha, beta, c) };
    }
}

/// Stores a tile short of rows or columns, or with a non-unit column stride, through a
/// dense MR x NR scratch tile with the arithmetic of [`store_rows`].
///
/// # Safety
/// `c` must describe readable and writable elements (at most ROWS rows and 8 * VECS
/// columns).
#[target_feature(enable = "avx2,fma")]
unsafe fn store_through_scratch<const ROWS: usize, const VECS: usize>(
    acc: &[[__m256; VECS]; ROWS],
    alpha: f32,
    beta: f32,
    c: &CTile,
) {
    let mut scratch = [0.0f32; MR * NR];
    // SAFETY: the tile is readable and writable by contract; scratch holds MR * NR floats,
    // and store_rows writes ROWS <= MR rows of 8 * VECS <= NR floats at row stride NR.
    unsafe {
        gather_tile(c, beta, &mut scratch, NR);
        store_rows::<ROWS, VECS>(acc, alpha, beta, scratch.as_mut_ptr(), NR);
        scatter_tile(c, &scratch, NR);
    }
}

/// `C[r, 0..8 * VECS] = alpha * acc[r] + beta * C[r, 0..8 * VECS]` for each of the ROWS
/// rows, as the 6 x 16 tile stores (`beta == 0` never reads C).
///
/// # Safety
/// `c` must hold ROWS rows of `8 * VECS` writable floats, `row_stride` apart.
#[target_feature(enable = "avx2,fma")]
unsafe fn store_rows<const ROWS: usize, const VECS: usize>(
    acc: &[[__m256; VECS]; ROWS],
    alpha: f32,
    beta: f32,
    c: *mut f32,
    row_stride: usize,
) {
    let va = _mm256_set1_ps(alpha);
    let vb = _mm256_set1_ps(beta);
    for (r, row) in acc.iter().enumerate() {
        for (v, x) in row.iter().enumerate() {
            // SAFETY: the caller guarantees ROWS rows of 8 * VECS writable floats.
            unsafe {
                let p = c.add(r * row_stride + 8 * v);
                if beta == 0.0 {
                    _mm256_storeu_ps(p, _mm256_mul_ps(va, *x));
                } else {
                    let old = _mm256_mul_ps(vb, _mm256_loadu_ps(p));
                    _mm256_storeu_ps(p, _mm256_fmadd_ps(va, *x, old));
                }
            }
        }
    }
}
