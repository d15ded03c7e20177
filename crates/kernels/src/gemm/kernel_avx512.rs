//! The AVX-512 micro-kernel: a 16 x 16 register tile, one zmm accumulator per row of C
//! (16 of the 32 zmm registers). Each step loads one B vector and multiplies it by 16 A
//! values broadcast straight from memory inside the FMAs (`{1to16}`), so a step issues one
//! plain load and 16 FMAs. Sixteen rows also tile the row counts of real layers (16, 64, 128,
//! 256 output channels) without a ragged edge. See `microkernel.rs` for the contract.

use super::kernel_avx512_tile::tile;
use super::microkernel::{BPanel, CTile};

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
    unsafe { tile::<MR, 1>(kc, alpha, a, b, beta, c) }
}
