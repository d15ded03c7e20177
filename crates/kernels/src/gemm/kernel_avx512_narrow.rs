//! The AVX-512 micro-kernel for products with few rows (up to 8, such as a LeNet layer's 6
//! output channels): a 6 x 32 register tile, two zmm accumulators per row of C (12 of the 32
//! zmm registers). The 16 x 16 tile would mostly multiply padding there, and the 6 x 16 AVX2
//! tile issues half as much work per step. Same arithmetic per element as the AVX2 tile: one
//! FMA chain over `p` in order. See `microkernel.rs` for the contract.

use super::kernel_avx512_tile::fitted_tile;
use super::microkernel::{BPanel, CTile};

/// Rows of the register tile.
pub(crate) const MR: usize = 6;
/// Columns of the register tile: two zmm vectors of 16 floats.
pub(crate) const NR: usize = 32;

/// Runs the narrow AVX-512 micro-kernel.
///
/// # Safety
/// The CPU must support AVX-512F, and the arguments must meet [`super::microkernel::MicroKernelFn`]'s contract.
pub(crate) unsafe fn kernel(kc: usize, alpha: f32, a: *const f32, b: BPanel, beta: f32, c: &CTile) {
    // SAFETY: the caller selected this kernel only after detecting AVX-512F, and passes
    // panels and a tile that meet the micro-kernel contract.
    unsafe { fitted_tile::<MR, 2>(kc, alpha, a, b, beta, c) }
}
