//! The AVX-512 micro-kernel for cores with two 512-bit FMA pipes: a 12 x 32 register tile,
//! two zmm accumulators per row of C (24 of the 32 zmm registers). Each step loads two B
//! vectors and broadcasts 12 A values, each feeding two FMAs: 14 loads per 24 FMAs (0.58 a
//! FMA), against 17 per 16 (1.06) for the 16 x 16 tile, whose broadcasts keep the load ports
//! as busy as the FMAs keep two FMA pipes. Per element the arithmetic is the 16 x 16 tile's:
//! one FMA chain over `p` in order from zero, then `alpha * acc (+ beta * C)`, so both tiles
//! give the same bits. See `microkernel.rs` for the contract.

use super::kernel_avx512_tile::fitted_tile;
use super::microkernel::{BPanel, CTile};

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
    unsafe { fitted_tile::<MR, 2>(kc, alpha, a, b, beta, c) }
}
