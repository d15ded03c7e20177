//! The micro-kernel contract shared by every instruction-set path.
//!
//! A micro-kernel computes one `MR x NR` tile of C from packed panels:
//!
//! ```text
//! C[0..rows, 0..cols] = alpha * (A_panel · B_panel)[0..rows, 0..cols] + beta * C[0..rows, 0..cols]
//! ```
//!
//! - `A_panel` is `kc x MR`, packed `p`-major: for each `p` in `0..kc`, the `MR` values
//!   `A[0..MR, p]` sit next to each other (rows past the matrix edge are zero).
//! - `B_panel` is `kc x NR`, stored `p`-major with a row stride: for each `p`, the `NR` values
//!   `B[p, 0..NR]` sit next to each other, `row_stride` floats after those of `p - 1`. Packed
//!   panels have `row_stride == NR` (columns past the edge are zero); when each B element is
//!   used by one tile only, the driver points straight into a row-major B instead.
//! - `beta == 0` never reads C, so NaN or uninitialised values in C are overwritten (BLAS).
//! - Accumulation runs over `p` in increasing order, one chain per element, so an element's bits
//!   depend only on the packed data and never on where its tile sits or which thread runs it.
//! - Partial tiles (`rows < MR` or `cols < NR`) and non-unit column strides go through a
//!   padded scratch tile with the same arithmetic as a full tile.

use super::blocking::{Blocking, CacheSizes, TileOrder};
use super::choice::{CpuIdentity, GemmKernel};
use super::pack::{pack_a, pack_a16, pack_b, pack_b_t};
use super::view::MatRef;
use crate::isa::Isa;

/// Where a micro-kernel writes: a pointer to `C[0, 0]` of the tile and its extent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CTile {
    /// Pointer to the tile's top-left element.
    pub ptr: *mut f32,
    /// Distance in elements between rows of C.
    pub row_stride: usize,
    /// Distance in elements between columns of C.
    pub col_stride: usize,
    /// Valid rows, `1..=MR`.
    pub rows: usize,
    /// Valid columns, `1..=NR`.
    pub cols: usize,
}

/// Where a micro-kernel reads B: `kc` rows of `NR` contiguous floats, `row_stride` apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BPanel {
    /// Pointer to `B[0, 0]` of the panel.
    pub ptr: *const f32,
    /// Distance in floats between consecutive rows; `NR` for a packed panel.
    pub row_stride: usize,
    /// Memory the kernel should ask the cache for while it computes (a hint; never read).
    pub prefetch: Prefetch,
}

/// A run of cache lines for a micro-kernel to prefetch into L2 while it computes, `per_step`
/// lines each k-step: `lines` lines taken row by row from a row-major block (`row_len` floats
/// a row, rows `row_stride` apart), starting `col` floats into the row at `row`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefetch {
    /// Lines to prefetch per k-step.
    pub per_step: usize,
    /// Start of the current row.
    pub row: *const f32,
    /// Offset in floats of the next line within the row.
    pub col: usize,
    /// Floats in a row.
    pub row_len: usize,
    /// Distance in floats between rows.
    pub row_stride: usize,
    /// Lines still to prefetch.
    pub lines: usize,
}

impl Prefetch {
    /// Nothing to prefetch.
    pub(crate) const NONE: Prefetch = Prefetch {
        per_step: 0,
        row: std::ptr::null(),
        col: 0,
        row_len: 0,
        row_stride: 0,
        lines: 0,
    };

    /// Share `index` of `shares` equal shares of the lines of `block` (row-major), to be
    /// prefetched over `steps` k-steps.
    pub(crate) fn share_of(
        block: MatRef<'_>,
        index: usize,
        shares: usize,
        steps: usize,
    ) -> Prefetch {
        let per_row = block.cols().div_ceil(LINE_FLOATS);
        let total = per_row * block.rows();
        let share = total.div_ceil(shares.max(1));
        let first = index * share;
        if first >= total || block.col_stride() != 1 {
            return Prefetch::NONE;
        }
        let lines = share.min(total - first);
        Prefetch {
            per_step: lines.div_ceil(steps.max(1)),
            row: block.data()[(first / per_row) * block.row_stride()..].as_ptr(),
            col: (first % per_row) * LINE_FLOATS,
            row_len: block.cols(),
            row_stride: block.row_stride(),
            lines,
        }
    }

    /// Prefetches this step's lines into L2.
    #[inline(always)]
    pub(crate) fn step(&mut self) {
        self.steps(1);
    }

    /// Prefetches the lines of `count` steps into L2 (an unrolled loop's iteration).
    #[inline(always)]
    pub(crate) fn steps(&mut self, count: usize) {
        for _ in 0..(count * self.per_step).min(self.lines) {
            self.lines -= 1;
            prefetch_l2(self.row.wrapping_add(self.col));
            self.col += LINE_FLOATS;
            if self.col >= self.row_len {
                self.col = 0;
                self.row = self.row.wrapping_add(self.row_stride);
            }
        }
    }
}

/// Floats in a 64-byte cache line.
pub(crate) const LINE_FLOATS: usize = 16;

/// A hint to load the cache line holding `ptr` into L2; never faults, and does nothing off
/// x86-64.
#[inline(always)]
pub(crate) fn prefetch_l2(ptr: *const f32) {
    // SAFETY: SSE is part of the x86-64 baseline, and a prefetch never dereferences or faults.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(ptr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// A micro-kernel: `(kc, alpha, a_panel, b_panel, beta, tile)`.
///
/// # Safety
/// `a_panel` must hold `kc * MR` readable floats and `b_panel` `kc` rows of `NR` readable
/// floats; `tile` must describe `rows x cols` writable elements that no other thread touches
/// during the call.
pub(crate) type MicroKernelFn = unsafe fn(usize, f32, *const f32, BPanel, f32, &CTile);

/// A micro-kernel with its register tile and the cache blocking that feeds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MicroKernel {
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// Depth of one packed block (LOOP 4).
    pub kc: usize,
    /// Rows of one packed A block (LOOP 3); a multiple of `mr`.
    pub mc: usize,
    /// Columns of one packed B block (LOOP 5); a multiple of `nr`.
    pub nc: usize,
    /// The order of the two innermost loops.
    pub order: TileOrder,
    /// The column granularity at which threads may cut C between them without adding work:
    /// 16 for the AVX-512 tiles, whose partial panels run only the zmm columns they need,
    /// the tile's width for the others.
    pub split_cols: usize,
    /// Whether the driver has the micro-kernels prefetch the next B block (see
    /// [`Blocking::derive`]).
    pub prefetch_next_b: bool,
    /// The most tiles of rows with which the driver reads B where it lies, unpacked, in
    /// products one block deep (see `in_place_b.rs`); 0 for never. The AVX-512 tiles read
    /// B at any row stride, and the wider their panel, the more tiles of rows it pays for:
    /// on a Xeon with two 512-bit FMA ports (family 6 model 0xa7, 1 thread, against packing
    /// B, alternating in one process), the 8 x 48 tile ran 64x144x65536 1.01x and
    /// 64x256x16384 1.05x with 8 (24 to 48 rows 1.07-1.29x); the 12 x 32 one 48x144x65536
    /// 1.04x with 4, but 0.97x with 6 and 0.88x with 8; the 16 x 16 one 0.98x with 3 and
    /// 0.91x with 4. The AVX2 4 x 24 tile's assembly loop assumes packed panels, and the
    /// AVX2 and portable kernels are not measured.
    pub b_in_place_panels: usize,
    /// The tile computation.
    pub run: MicroKernelFn,
    /// Packs an A block into `mr`-row micro-panels.
    pub pack_a: PackFn,
    /// Packs a B block into `nr`-column micro-panels.
    pub pack_b: PackFn,
}

// The transposing packers work on 16-wide panels: the AVX-512 tiles' rows and columns (the
// 12 x 32 and 8 x 48 tiles' columns as two and three blocks) and the AVX2 tile's columns.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    super::kernel_avx512::MR == super::transpose::BLOCK
        && super::kernel_avx512::NR == super::transpose::BLOCK
        && super::kernel_avx512_wide::NR == 2 * super::transpose::BLOCK
        && super::kernel_avx512_8x48::NR == 3 * super::transpose::BLOCK
        && super::kernel_avx2::NR == super::transpose::BLOCK
);

impl MicroKernel {
    /// The micro-kernel a convolution's implicit GEMM with `m` rows of C runs on an
    /// instruction set ([`GemmKernel::for_convolution`]), always in the BLIS order: its B
    /// block is one piece of positions that every row of the weights multiplies, and its C
    /// rows are rarely 4 KiB apart. On a Xeon with two FMA ports (family 6 model 0xa7) the
    /// A-in-L1 order that suits large products made VGG and ResNet-20 layers 3-10 % slower
    /// at 1 thread (`ventral bench conv`). The caller has checked `isa` is supported.
    pub(crate) fn for_convolution(isa: Isa, m: usize) -> MicroKernel {
        Self::in_order(GemmKernel::for_convolution(isa), m, TileOrder::BPanelInL1)
    }

    /// The candidate `kernel` for a product with `m` rows of C, with this machine's blocking.
    ///
    /// The AVX-512 tiles are 12 or 16 rows tall; with 8 rows or fewer (a LeNet layer's 6
    /// output channels) most of either would multiply padding, so a 6 x 32 AVX-512 tile does
    /// the work instead, with the same arithmetic; and with 9 to 16 rows the 12-row tile
    /// would pad them to 24, so the 16 x 16 tile runs. The choice depends on the whole
    /// product's `m` only, never on how threads split it. The caller has checked `kernel` is
    /// supported.
    pub(crate) fn of(kernel: GemmKernel, m: usize) -> MicroKernel {
        let order = GemmKernel::tile_order(kernel.isa(), CpuIdentity::detect());
        Self::in_order(kernel, m, order)
    }

    /// [`MicroKernel::of`] with its loops in `order`, and the blocking derived for it.
    fn in_order(kernel: GemmKernel, m: usize, order: TileOrder) -> MicroKernel {
        let caches = CacheSizes::detect();
        let build = |(mr, nr): (usize, usize),
                     b_in_place_panels: usize,
                     run: MicroKernelFn,
                     pack_a: PackFn,
                     pack_b: PackFn| {
            let Blocking {
                kc,
                mc,
                nc,
                order,
                prefetch_next_b,
            } = Blocking::derive(caches, mr, nr, order);
            MicroKernel {
                mr,
                nr,
                kc,
                mc,
                nc,
                order,
                split_cols: if kernel.isa() == Isa::Avx512 { 16 } else { nr },
                prefetch_next_b,
                b_in_place_panels,
                run,
                pack_a,
                pack_b,
            }
        };
        match kernel {
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512x16x16 | GemmKernel::Avx512x12x32 | GemmKernel::Avx512x8x48
                if m <= 8 =>
            {
                use super::kernel_avx512_narrow::{MR, NR, kernel};
                build((MR, NR), 2, kernel, pack_a::<MR>, pack_b_t::<NR>)
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512x16x16 => {
                use super::kernel_avx512::{MR, NR, kernel};
                build((MR, NR), 2, kernel, pack_a16, pack_b_t::<NR>)
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512x12x32 if m <= 16 => {
                use super::kernel_avx512::{MR, NR, kernel};
                build((MR, NR), 2, kernel, pack_a16, pack_b_t::<NR>)
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512x12x32 => {
                use super::kernel_avx512_wide::{MR, NR, kernel};
                build((MR, NR), 4, kernel, pack_a::<MR>, pack_b_t::<NR>)
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512x8x48 => {
                use super::kernel_avx512_8x48::{MR, NR, kernel};
                build((MR, NR), 8, kernel, pack_a::<MR>, pack_b_t::<NR>)
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2x6x16 => {
                use super::kernel_avx2::{MR, NR, kernel};
                build((MR, NR), 0, kernel, pack_a::<MR>, pack_b_t::<NR>)
            }
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2x4x24 => {
                use super::kernel_avx2_wide::{MR, NR, kernel};
                build((MR, NR), 0, kernel, pack_a::<MR>, pack_b_t::<NR>)
            }
            _ => {
                use super::kernel_portable::{MR, NR, kernel};
                build((MR, NR), 0, kernel, pack_a::<MR>, pack_b::<NR>)
            }
        }
    }
}

/// A packer of an A or B block into micro-panels.
pub(crate) type PackFn = fn(MatRef<'_>, &mut [f32]);

/// Copies a partial or strided tile of C into a dense `MR x NR` scratch tile (zeros
/// elsewhere) so the full-tile store path can run on it; `beta == 0` skips reading C.
///
/// # Safety
/// `tile` must describe readable elements, and `scratch` must hold `mr * nr` floats.
pub(crate) unsafe fn gather_tile(tile: &CTile, beta: f32, scratch: &mut [f32], nr: usize) {
    scratch.fill(0.0);
    if beta == 0.0 {
        return;
    }
    for i in 0..tile.rows {
        for j in 0..tile.cols {
            // SAFETY: (i, j) lies inside the tile, which the caller guarantees is readable.
            scratch[i * nr + j] =
                unsafe { *tile.ptr.add(i * tile.row_stride + j * tile.col_stride) };
        }
    }
}

/// Writes the valid part of a dense scratch tile back into C.
///
/// # Safety
/// `tile` must describe writable elements, and `scratch` must hold `mr * nr` floats.
pub(crate) unsafe fn scatter_tile(tile: &CTile, scratch: &[f32], nr: usize) {
    for i in 0..tile.rows {
        for j in 0..tile.cols {
            // SAFETY: (i, j) lies inside the tile, which the caller guarantees is writable.
            unsafe {
                *tile.ptr.add(i * tile.row_stride + j * tile.col_stride) = scratch[i * nr + j]
            };
        }
    }
}
