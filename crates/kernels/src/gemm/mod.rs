//! Single-precision general matrix multiply: `C = alpha * A * B + beta * C`.
//!
//! The BLIS design: A and B are packed into micro-panels that fit the cache levels (their
//! sizes derived from the caches the OS reports, [`Blocking`]), and a register-blocked
//! micro-kernel (a [`GemmKernel`]: AVX-512 16x16, 12x32 or 8x48, AVX2+FMA 6x16 or 4x24, chosen at run time
//! per CPU, or a portable `wide` kernel) computes one tile of C at a time. Threads split C into disjoint column or row blocks,
//! never the `k` dimension, so every element is summed in the same order
//! at any thread count: results are bit-identical for 1, 2 or 64 threads.
//!
//! ```
//! use ventral_kernels::gemm::{gemm, MatMut, MatRef};
//!
//! let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
//! let b = [5.0, 6.0, 7.0, 8.0]; // [[5, 6], [7, 8]]
//! let mut c = [f32::NAN; 4]; // beta = 0 never reads C
//! gemm(
//!     1.0,
//!     MatRef::row_major(&a, 2, 2)?,
//!     MatRef::row_major(&b, 2, 2)?,
//!     0.0,
//!     MatMut::row_major(&mut c, 2, 2)?,
//! )?;
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! # Ok::<(), ventral_kernels::KernelError>(())
//! ```

mod alone;
mod batch;
mod blocking;
mod choice;
mod driver;
pub(crate) mod implicit;
mod in_place_b;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2_wide;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512_8x48;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512_narrow;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512_tile;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512_wide;
mod kernel_portable;
pub(crate) mod microkernel;
mod pack;
mod row;
mod shared_a;
mod small;
pub(crate) mod transpose;
mod view;

use rayon::prelude::*;

pub use alone::micro_kernel_gflops;
pub use batch::{MatBatchMut, MatBatchRef};
pub use blocking::{Blocking, CacheSizes, TileOrder};
pub use choice::{CpuIdentity, GemmKernel, Vendor};
pub use view::{MatMut, MatRef};

use crate::error::{KernelError, Result};
use crate::isa::Isa;
use crate::spare::{give_back, take_fitting};
use driver::RawMatMut;
use microkernel::MicroKernel;
use shared_a::SharedPackedA;

/// Below this many floating-point operations (`2 * m * n * k`) a GEMM stays on one thread:
/// about 80 µs of single-core work. At 128³ (4.2 MFLOP) splitting measured 50 GFLOP/s on two
/// threads against 94 on one.
pub const PARALLEL_MIN_FLOPS: usize = 1 << 23;

/// `C = alpha * A * B + beta * C` with the default micro-kernel ([`GemmKernel::detect`]: the
/// one chosen for this CPU on [`Isa::detect`], or `VENTRAL_GEMM_KERNEL`), using the threads of
/// the current rayon pool.
///
/// `beta == 0` never reads C (NaN in C is overwritten); `alpha == 0` or `k == 0` never reads A
/// or B. The same inputs give the same bits at any thread count.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if `A` is `m x k`, `B` is not `k x n`, or `C` is not `m x n`.
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> Result<()> {
    gemm_with(GemmKernel::detect(), alpha, a, b, beta, c)
}

/// [`gemm`] on an explicit instruction set (with the micro-kernel [`GemmKernel::for_isa`]
/// chooses there), for tests and benchmarks of each path.
///
/// # Errors
/// As [`gemm`], plus [`KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn gemm_on(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
) -> Result<()> {
    let isa = isa.check()?;
    gemm_with(GemmKernel::for_isa(isa), alpha, a, b, beta, c)
}

/// [`gemm`] on an explicit micro-kernel candidate, for tests and benchmarks of each one.
/// Every candidate gives the same bits on a given machine.
///
/// # Errors
/// As [`gemm`], plus [`KernelError::UnsupportedIsa`] if this CPU cannot run `kernel`.
pub fn gemm_with(
    kernel: GemmKernel,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
) -> Result<()> {
    let kernel = kernel.check()?;
    check_shapes(
        "gemm",
        (a.rows(), a.cols()),
        (b.rows(), b.cols()),
        (c.rows(), c.cols()),
    )?;
    let raw = raw_of(&mut c);
    // SAFETY: `raw` comes from a validated, exclusively borrowed MatMut of the checked shape.
    unsafe { execute(kernel, alpha, a, b, beta, raw, rayon::current_num_threads()) };
    Ok(())
}

/// Many independent products of one shape: `C[i] = alpha * A[i] * B[i] + beta * C[i]`.
///
/// Items run in parallel when there are at least as many as threads; otherwise each product
/// is itself split across threads. Either way every element is computed exactly as [`gemm`]
/// would, so results do not depend on the thread count.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if the batch sizes differ or the item shapes do not agree.
pub fn gemm_batched(
    alpha: f32,
    a: MatBatchRef<'_>,
    b: MatBatchRef<'_>,
    beta: f32,
    c: MatBatchMut<'_>,
) -> Result<()> {
    gemm_batched_on(Isa::detect(), alpha, a, b, beta, c)
}

/// [`gemm_batched`] on an explicit instruction set.
///
/// # Errors
/// As [`gemm_batched`], plus [`KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn gemm_batched_on(
    isa: Isa,
    alpha: f32,
    a: MatBatchRef<'_>,
    b: MatBatchRef<'_>,
    beta: f32,
    mut c: MatBatchMut<'_>,
) -> Result<()> {
    let kernel = GemmKernel::for_isa(isa.check()?);
    if a.batch() != b.batch() || a.batch() != c.batch() {
        return Err(KernelError::ShapeMismatch {
            op: "gemm_batched",
            detail: format!(
                "batch sizes differ: A has {}, B has {}, C has {}",
                a.batch(),
                b.batch(),
                c.batch()
            ),
        });
    }
    check_shapes(
        "gemm_batched",
        a.item_shape(),
        b.item_shape(),
        c.item_shape(),
    )?;
    let batch = c.batch();
    let (data, batch_stride, [rows, cols, row_stride, col_stride]) = c.parts();
    let base = RawMatMut {
        ptr: data.as_mut_ptr(),
        rows,
        cols,
        row_stride,
        col_stride,
    };
    let item_c = |i: usize| base.offset(i * batch_stride);
    let threads = rayon::current_num_threads();
    let (m, k) = a.item_shape();
    let flops = 2 * m * k * cols;
    if threads > 1 && batch >= threads && flops.saturating_mul(batch) >= PARALLEL_MIN_FLOPS {
        (0..batch).into_par_iter().for_each(|i| {
            // SAFETY: MatBatchMut guarantees items are disjoint and each item non-aliasing;
            // each index goes to exactly one task.
            unsafe { execute(kernel, alpha, a.item(i), b.item(i), beta, item_c(i), 1) };
        });
    } else {
        for i in 0..batch {
            // SAFETY: as above, one item at a time.
            unsafe {
                execute(
                    kernel,
                    alpha,
                    a.item(i),
                    b.item(i),
                    beta,
                    item_c(i),
                    threads,
                )
            };
        }
    }
    Ok(())
}

fn check_shapes(
    op: &'static str,
    a: (usize, usize),
    b: (usize, usize),
    c: (usize, usize),
) -> Result<()> {
    if a.1 != b.0 || c != (a.0, b.1) {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!(
                "A [{}, {}] times B [{}, {}] into C [{}, {}]: need A.cols == B.rows and C == [A.rows, B.cols]",
                a.0, a.1, b.0, b.1, c.0, c.1
            ),
        });
    }
    Ok(())
}

/// `c` as a raw pointer and its shape, for handing disjoint blocks to threads.
pub(crate) fn raw_of(c: &mut MatMut<'_>) -> RawMatMut {
    RawMatMut {
        rows: c.rows(),
        cols: c.cols(),
        row_stride: c.row_stride(),
        col_stride: c.col_stride(),
        ptr: c.data_mut().as_mut_ptr(),
    }
}

/// Runs one product on up to `threads` threads.
///
/// # Safety
/// `c` must describe `a.rows() x b.cols()` writable, non-aliasing elements owned by this call,
/// `a.cols() == b.rows()`, and the CPU must support `kernel`.
unsafe fn execute(
    kernel: GemmKernel,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: RawMatMut,
    threads: usize,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        // SAFETY: forwarded from the caller.
        unsafe { scale(beta, c) };
        return;
    }
    if small::is_small(m, k, n) {
        // SAFETY: forwarded from the caller.
        unsafe { small::gemm_small(kernel.isa(), alpha, a, b, beta, c) };
        return;
    }
    if row::applies(a, b) {
        // SAFETY: forwarded from the caller.
        unsafe { row::gemm_row(kernel.isa(), alpha, a, b, beta, c, threads) };
        return;
    }
    let kernel = MicroKernel::of(kernel, m);
    let flops = 2 * m * n * k;
    let parts = if flops < PARALLEL_MIN_FLOPS {
        1
    } else {
        threads.max(1)
    };
    // Split the longer side of C into `parts` blocks whose edges fall on tile rows or on
    // `split_cols` columns. Every tile shape of a kernel sums an element the same way (one FMA
    // chain over the same blocks of k), so the bits do not depend on the thread count.
    let split_columns = n >= m;
    let (len, unit) = if split_columns {
        (n, kernel.split_cols)
    } else {
        (m, kernel.mr)
    };
    let chunk = len.div_ceil(parts).div_ceil(unit) * unit;
    let blocks = len.div_ceil(chunk);
    // Column blocks all multiply the whole of A: pack it once, by all threads, for all of
    // them. Each thread used to pack all of A for itself; shared, 2 threads on an AMD EPYC
    // Zen 3 (interleaved in one process, seven shapes from 16x144x65536 to 2048^3, two runs)
    // were 1.01-1.10x as fast on 13 of 14 measurements (one 0.98). Same blocks, same bits.
    // The threads pack it as they first need it, in the product's one parallel section (see
    // `SharedPackedA`): against a parallel section of its own first, on a 2-core Xeon,
    // 128x1152x784 ran 1.04x, 2048^3 1.03x and 64x576x3136 1.015-1.03x as fast at 2
    // threads (interleaved, twice); 1024^3, 16x144x65536 and 128x4096x4096 level.
    // Except with many rows, where each thread packing A for itself a panel at a time (with
    // the A panel in L1, see `driver.rs`) keeps L2 for the B block: on the Xeon (family 6
    // model 0xa7, 2 threads, alternating in one process) 1024^3 and 2048^3 ran 1.045x as
    // fast unshared and 512x1024x1024 1.02x, while 64x576x3136 and 128x1152x784 ran 0.99x
    // and 256x1024x1024 and 384x1024x2048 level. So A is shared unless its rows fill at
    // least half an A block (MC), a quarter of L2.
    let rows_fill_a_block = 2 * m.min(kernel.mc) >= kernel.mc;
    let packs_own_panels = kernel.order == TileOrder::APanelInL1 && rows_fill_a_block;
    let share_a = split_columns && blocks > 1 && !packs_own_panels;
    let mut buffer = if share_a {
        take_fitting(&SPARE_PACKED_A, m.div_ceil(kernel.mr) * kernel.mr * k)
    } else {
        Vec::new()
    };
    // Pieces of a thread's share of the rows, so that each depth block has one for each
    // thread to pack.
    let share = m.div_ceil(kernel.mr).div_ceil(parts) * kernel.mr;
    let rows_per_piece = share.min(kernel.mc);
    let shared = share_a.then(|| SharedPackedA::new(&kernel, a, rows_per_piece, &mut buffer));
    let packed_a = shared.as_ref();
    let run_block = |index: usize| {
        let start = index * chunk;
        let size = chunk.min(len - start);
        let (a_block, b_block, c_block) = if split_columns {
            (a, b.block(0, start, k, size), c.block(0, start, m, size))
        } else {
            (a.block(start, 0, size, k), b, c.block(start, 0, size, n))
        };
        // SAFETY: blocks are disjoint ranges of C's rows or columns, and C's elements never
        // alias, so each thread writes elements no other thread touches.
        unsafe {
            driver::gemm_serial(
                &kernel,
                alpha,
                a_block,
                packed_a,
                b_block,
                beta,
                c_block,
                // Start at the rows of the piece this thread will likely pack first: on the
                // 2-core Xeon (family 6 model 0xa7, alternating in one process, 2 threads)
                // 128x1152x784 and 1024^3 ran 1.02-1.03x as fast, 64x576x3136, 2048^3 and
                // 128x4096x4096 1.00-1.01x.
                if share_a { index * rows_per_piece } else { 0 },
            )
        };
    };
    if blocks == 1 {
        run_block(0);
    } else {
        // The threads leave together, so that back-to-back products find them awake.
        crate::together::for_each_block(blocks, run_block);
    }
    drop(shared);
    if share_a {
        give_back(&SPARE_PACKED_A, [buffer], SPARE_PACKED_A_LIMIT);
    }
}

/// Buffers of a whole packed A, kept between calls (at most [`SPARE_PACKED_A_LIMIT`]): a
/// fresh one costs a page fault per 4 KiB.
static SPARE_PACKED_A: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// The most buffers [`SPARE_PACKED_A`] keeps.
const SPARE_PACKED_A_LIMIT: usize = 2;

/// `C = beta * C`, with `beta == 0` writing zeros without reading.
///
/// # Safety
/// `c` must describe writable elements owned by this call.
unsafe fn scale(beta: f32, c: RawMatMut) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            // SAFETY: (i, j) lies inside C, owned by this call.
            let x = unsafe { &mut *c.ptr.add(i * c.row_stride + j * c.col_stride) };
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}
