//! The portable micro-kernel, written with `wide` so it vectorises on any CPU (SSE2, NEON,
//! WASM SIMD, or scalar): a 6 x 8 tile of `f32x8` rows, 12 SSE registers on x86-64.
//! See `microkernel.rs` for the contract.

use wide::f32x8;

use super::microkernel::{BPanel, CTile, gather_tile, scatter_tile};

/// Rows of the register tile.
pub(crate) const MR: usize = 6;
/// Columns of the register tile: one `f32x8`.
pub(crate) const NR: usize = 8;

/// Runs the portable micro-kernel.
///
/// # Safety
/// The arguments must meet [`super::microkernel::MicroKernelFn`]'s contract.
pub(crate) unsafe fn kernel(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    // SAFETY: the contract guarantees kc * MR floats behind `a`.
    let a = unsafe { std::slice::from_raw_parts(a, kc * MR) };
    let mut acc = [f32x8::ZERO; MR];
    let mut lines = b.prefetch;
    for (p, ap) in a.chunks_exact(MR).enumerate() {
        lines.step();
        // SAFETY: the contract guarantees kc rows of NR floats, row_stride apart, behind `b`.
        let bp = unsafe { std::slice::from_raw_parts(b.ptr.add(p * b.row_stride), NR) };
        let bv = f32x8::from(<[f32; NR]>::try_from(bp).expect("chunk of NR"));
        for (r, row) in acc.iter_mut().enumerate() {
            *row = f32x8::splat(ap[r]).mul_add(bv, *row);
        }
    }

    let full = c.rows == MR && c.cols == NR && c.col_stride == 1;
    let mut scratch = [0.0f32; MR * NR];
    if !full {
        // SAFETY: the tile is readable by contract and scratch holds MR * NR floats.
        unsafe { gather_tile(c, beta, &mut scratch, NR) };
    }
    let (va, vb) = (f32x8::splat(alpha), f32x8::splat(beta));
    for (r, row) in acc.iter().enumerate() {
        let dst: &mut [f32] = if full {
            // SAFETY: a full tile: row r's NR floats are contiguous and writable, and no other
            // reference to them exists during this call.
            unsafe { std::slice::from_raw_parts_mut(c.ptr.add(r * c.row_stride), NR) }
        } else {
            &mut scratch[r * NR..(r + 1) * NR]
        };
        let out = if beta == 0.0 {
            va * *row
        } else {
            let old = f32x8::from(<[f32; NR]>::try_from(&*dst).expect("row of NR"));
            va.mul_add(*row, vb * old)
        };
        dst.copy_from_slice(&out.to_array());
    }
    if !full {
        // SAFETY: the tile is writable by contract and scratch holds MR * NR floats.
        unsafe { scatter_tile(c, &scratch, NR) };
    }
}
