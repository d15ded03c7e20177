//! GEMMs whose B operand never exists as a matrix: the caller packs each block of B straight
//! into the micro-panels the micro-kernel reads (an implicit-GEMM convolution lowers its
//! input this way, skipping the separate im2col buffer and the second pass that packed it).
//!
//! Two shapes of loop nest, both with the micro-kernel contract of `microkernel.rs`:
//!
//! - [`gemm_implicit`]: `C[i] = A * B[i] (+ bias)` for a batch of items sharing one A, which
//!   is packed once per call ([`PackedA`], by every thread when large) and read by every
//!   thread. Items and ranges of their columns are independent units of work; when they are
//!   fewer than the threads (one image of a deep layer), blocks of A's rows are too.
//! - [`gemm_sum`]: `C = sum over blocks b of A_b * B_b`, one long reduction cut into blocks
//!   no deeper than KC; threads split C's columns, never the reduction.
//!
//! Every element of C is computed by the same micro-kernel calls in the same order whatever
//! the thread count, so results are bit-identical for 1 or N threads.

use std::cell::RefCell;
use std::sync::Mutex;

use rayon::prelude::*;

use super::batch::MatBatchMut;
use super::blocking::even_depth;
use super::driver::{RawMatMut, aligned, pack_a_whole, sweep_tiles};
use super::microkernel::{MicroKernel, Prefetch};
use super::view::{MatMut, MatRef};
use super::{PARALLEL_MIN_FLOPS, raw_of};
use crate::conv::Epilogue;
use crate::isa::Isa;
use crate::spare::{give_back, take_fitting};

/// Above this many packed floats (1 MiB), A is packed by all threads, in pieces this large.
const PARALLEL_PACK_FLOATS: usize = 1 << 18;

/// Packed-A buffers of finished calls, for the next [`PackedA::new`]: a fresh buffer of a
/// deep layer's weights (megabytes) is faulted in and cleared by the kernel page by page,
/// which cost ResNet-50 about a tenth of its batch-1 inference.
static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// The most buffers [`SPARE`] keeps: one per thread that may pack at once, and spares.
const SPARE_BUFFERS: usize = 4;

/// An `m x k` matrix A packed once into the micro-panels of the kernel chosen for its `m`:
/// for each KC-deep block of `k`, every row of A as MR-row panels (`kc x MR`, `p`-major).
pub(crate) struct PackedA {
    data: Vec<f32>,
    m: usize,
    k: usize,
    m_pad: usize,
    kernel: MicroKernel,
}

impl PackedA {
    /// Packs `a` for the micro-kernel that `isa` uses on `a.rows()` rows; the caller has
    /// checked that the CPU supports `isa`. The buffer comes from [`SPARE`] and goes back
    /// there with [`PackedA::recycle`].
    pub(crate) fn new(isa: Isa, a: MatRef<'_>) -> PackedA {
        let mr = MicroKernel::for_convolution(isa, a.rows()).mr;
        let needed = a.rows().div_ceil(mr) * mr * a.cols();
        let buffer = take_fitting(&SPARE, needed);
        PackedA::new_in(isa, a, buffer)
    }

    /// Returns the buffer to [`SPARE`] for the next [`PackedA::new`], keeping at most
    /// [`SPARE_BUFFERS`] (the largest).
    pub(crate) fn recycle(self) {
        give_back(&SPARE, [self.data], SPARE_BUFFERS);
    }

    /// As [`PackedA::new`], packing into `data` (cleared and resized): a buffer recycled
    /// from an earlier packing ([`PackedA::into_data`]) saves the page faults of a fresh one.
    pub(crate) fn new_in(isa: Isa, a: MatRef<'_>, mut data: Vec<f32>) -> PackedA {
        let kernel = MicroKernel::for_convolution(isa, a.rows());
        let (m, k) = (a.rows(), a.cols());
        let m_pad = m.div_ceil(kernel.mr) * kernel.mr;
        // Every element is written below (partial panels are zero-filled by the packer), so
        // a recycled buffer is only cut or grown, never cleared first.
        if data.len() >= m_pad * k {
            data.truncate(m_pad * k);
        } else {
            data.resize(m_pad * k, 0.0);
        }
        // A large A (the deep layers' weights, megabytes) is packed side by side in pieces.
        let rows_per = if m_pad * k >= PARALLEL_PACK_FLOATS && rayon::current_num_threads() > 1 {
            (PARALLEL_PACK_FLOATS / k.max(1)).div_ceil(kernel.mr).max(1) * kernel.mr
        } else {
            m_pad.max(kernel.mr)
        };
        pack_a_whole(&kernel, a, rows_per, &mut data);
        PackedA {
            data,
            m,
            k,
            m_pad,
            kernel,
        }
    }

    /// Wraps `data`, which a caller has filled as [`PackedLayout::of`] `(isa, m, k)` lays
    /// out an `m x k` A (rows past `m` zero), without packing anything: a producer of A's
    /// elements (Winograd's weight transform) can write them where the micro-kernel reads
    /// them, skipping a matrix that would only be packed again.
    ///
    /// # Panics
    /// If `data` does not hold exactly the layout's floats.
    pub(crate) fn from_laid_out(isa: Isa, m: usize, k: usize, data: Vec<f32>) -> PackedA {
        let layout = PackedLayout::of(isa, m, k);
        assert_eq!(
            data.len(),
            layout.len(),
            "packed A: {} floats for a {m} x {k} layout",
            data.len()
        );
        PackedA {
            data,
            m,
            k,
            m_pad: layout.m_pad,
            kernel: MicroKernel::for_convolution(isa, m),
        }
    }

    /// The packed buffer, for [`PackedA::new_in`] to reuse.
    pub(crate) fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Packs a block of B (`kc x nc`) as the micro-panels [`gemm_implicit`] reads with this A.
    pub(crate) fn pack_b(&self, b: MatRef<'_>, out: &mut [f32]) {
        (self.kernel.pack_b)(b, out);
    }

    /// Columns of the kernel's register tile: the width of the B micro-panels it reads.
    pub(crate) fn nr(&self) -> usize {
        self.kernel.nr
    }

    /// The panel of rows `row..row + MR` in the block of depth `kc` starting at `pc`.
    fn panel(&self, pc: usize, kc: usize, row: usize) -> &[f32] {
        &self.data[pc * self.m_pad + row * kc..][..self.kernel.mr * kc]
    }
}

/// Where each element of an `m x k` matrix goes in a [`PackedA`] (see
/// [`PackedA::from_laid_out`]): KC-deep blocks of the columns in order, each holding every
/// MR-row panel in turn, each panel `p`-major with its MR rows side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedLayout {
    /// Rows of a panel.
    pub mr: usize,
    /// Rows rounded up to whole panels.
    pub m_pad: usize,
    /// Columns.
    pub k: usize,
    /// Columns of every block but possibly the last (see `even_depth`).
    pub depth: usize,
}

impl PackedLayout {
    /// The layout [`PackedA::new`] packs an `m x k` A in for the kernel `isa` runs on `m` rows.
    pub(crate) fn of(isa: Isa, m: usize, k: usize) -> PackedLayout {
        let kernel = MicroKernel::for_convolution(isa, m);
        PackedLayout {
            mr: kernel.mr,
            m_pad: m.div_ceil(kernel.mr) * kernel.mr,
            k,
            depth: even_depth(k, kernel.kc).max(1),
        }
    }

    /// Floats in the packed matrix.
    pub(crate) fn len(&self) -> usize {
        self.m_pad * self.k
    }

    /// The position of element `(row, col)`, for `row < m_pad` and `col < k`.
    pub(crate) fn index(&self, row: usize, col: usize) -> usize {
        let pc = col / self.depth * self.depth;
        let kc = self.depth.min(self.k - pc);
        pc * self.m_pad + (row / self.mr * self.mr) * kc + (col - pc) * self.mr + row % self.mr
    }
}

/// The packed weights of one call: packed for it (recycled when it ends), or prepared earlier
/// and kept by the caller ([`crate::conv::PreparedWeights`]).
pub(crate) enum GroupWeights<'a> {
    /// Packed for this call.
    Packed(PackedA),
    /// Packed earlier from the same weights.
    Prepared(&'a PackedA),
}

impl std::ops::Deref for GroupWeights<'_> {
    type Target = PackedA;

    fn deref(&self) -> &PackedA {
        match self {
            GroupWeights::Packed(p) => p,
            GroupWeights::Prepared(p) => p,
        }
    }
}

impl GroupWeights<'_> {
    /// Ends the call: a buffer packed for it goes back for the next.
    pub(crate) fn finish(self) {
        if let GroupWeights::Packed(p) = self {
            p.recycle();
        }
    }
}

impl PackedA {
    /// The bytes of packed floats held.
    pub(crate) fn bytes(&self) -> usize {
        4 * self.data.capacity()
    }

    /// The KC-deep blocks `(pc, kc)` of the reduction, in order, as A was packed: a caller
    /// packing B itself for [`multiply_packed`] must use exactly these.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (k, depth) = (self.k, even_depth(self.k, self.kernel.kc));
        (0..k)
            .step_by(depth.max(1))
            .map(move |pc| (pc, depth.min(k - pc)))
    }
}

/// `C = A[:, pc..pc + kc] * B + beta * C` for one block of the reduction, where `(pc, kc)` is
/// one of [`PackedA::blocks`] and `packed_b` holds B (`kc x C.cols`) as `ceil(cols / NR)`
/// micro-panels of `kc x NR` floats, `p`-major (`NR` is [`PackedA::nr`]). `beta == 0` never
/// reads C. One thread; the caller splits work between calls.
///
/// # Panics
/// If `c` does not have A's rows, `(pc, kc)` is not one of A's blocks, or `packed_b` is short.
pub(crate) fn multiply_packed(
    a: &PackedA,
    (pc, kc): (usize, usize),
    packed_b: &[f32],
    beta: f32,
    mut c: MatMut<'_>,
) {
    let kernel = a.kernel;
    let (m, n) = (c.rows(), c.cols());
    assert_eq!(m, a.m, "multiply_packed: C rows");
    assert!(
        a.blocks().any(|block| block == (pc, kc)),
        "multiply_packed: ({pc}, {kc}) is not a block of A"
    );
    assert!(
        packed_b.len() >= n.div_ceil(kernel.nr) * kernel.nr * kc,
        "multiply_packed: packed B too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    let base = raw_of(&mut c);
    // SAFETY: `c` is a validated, exclusively borrowed view of m x n elements; the panels of
    // A and B were checked above to hold kc steps for every tile.
    unsafe {
        multiply_block(
            &kernel,
            |row| a.panel(pc, kc, row).as_ptr(),
            kc,
            packed_b,
            beta,
            base,
        )
    };
}

/// Sets the `rows x cols` block of C at `c` to `value(row)`.
///
/// # Safety
/// `c` must describe writable elements that no other thread touches during the call.
unsafe fn fill_rows(c: RawMatMut, value: impl Fn(usize) -> f32) {
    for r in 0..c.rows {
        let v = value(r);
        if c.col_stride == 1 {
            // SAFETY: row r of the block is `cols` contiguous writable elements.
            let row =
                unsafe { std::slice::from_raw_parts_mut(c.ptr.add(r * c.row_stride), c.cols) };
            row.fill(v);
        } else {
            for j in 0..c.cols {
                // SAFETY: (r, j) lies inside the block.
                unsafe { *c.ptr.add(r * c.row_stride + j * c.col_stride) = v };
            }
        }
    }
}

/// Calls `f` on each row of the block (unit column stride) or on each element.
///
/// # Safety
/// `c` must be a block of writable elements no other thread touches during the call.
unsafe fn map_rows(c: RawMatMut, f: impl Fn(&mut [f32])) {
    for r in 0..c.rows {
        if c.col_stride == 1 {
            // SAFETY: row r of the block is `cols` contiguous writable elements.
            f(unsafe { std::slice::from_raw_parts_mut(c.ptr.add(r * c.row_stride), c.cols) });
        } else {
            for j in 0..c.cols {
                // SAFETY: (r, j) lies inside the block.
                f(std::slice::from_mut(unsafe {
                    &mut *c.ptr.add(r * c.row_stride + j * c.col_stride)
                }));
            }
        }
    }
}

/// Per-thread packing buffers for A and B blocks, reused across calls.
#[derive(Default)]
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
    /// The caller's own scratch, handed to its packer.
    packer: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Runs `f` with this thread's buffers (fresh ones if a caller up the stack holds them).
fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => f(&mut buffers),
        Err(_) => f(&mut Buffers::default()),
    })
}

/// `C = A * B + beta * C` over one packed B block `kc` deep, for the `rows x cols` block `c`
/// (`beta == 0` never reads C); `a_panel(row)` points at the packed A panel of rows
/// `row..row + MR`.
///
/// # Safety
/// `c` must describe writable elements that no other thread touches during the call;
/// `packed_b` must hold `ceil(c.cols / NR)` panels of `kc x NR` floats and every `a_panel` a
/// panel of `kc x MR` floats.
unsafe fn multiply_block(
    kernel: &MicroKernel,
    a_panel: impl Fn(usize) -> *const f32,
    kc: usize,
    packed_b: &[f32],
    beta: f32,
    c: RawMatMut,
) {
    let (m, nc) = (c.rows, c.cols);
    let mc_max = kernel.mc;
    // LOOP 3 (ic): MC-row blocks of A (all of it is packed; this keeps the rows of a block
    // that one B panel meets in L2).
    for ic in (0..m).step_by(mc_max) {
        let mc = mc_max.min(m - ic);
        // SAFETY: every A panel holds kc * MR floats and the B block ceil(nc / NR) panels of
        // kc x NR (both packed); the block of C lies inside C, which the caller gives this
        // thread.
        unsafe {
            sweep_tiles(
                kernel,
                1.0,
                kc,
                |ir| a_panel(ic + ir),
                packed_b,
                beta,
                c.block(ic, 0, mc, nc),
                |_, _| Prefetch::NONE,
            )
        };
    }
}

/// `C[i] = A * B[i] + bias` for every item `i` of `c` (each `a.m x n`), where `B[i]` (`a.k x n`)
/// exists only through `pack_b(i, pc, kc, jc, nc, scratch, out)`: it must write
/// `B[i][pc..pc + kc, jc..jc + nc]` into `out` as `ceil(nc / NR)` micro-panels of `kc x NR`
/// floats, `p`-major, with columns past `nc` zero (`NR` is [`PackedA::nr`]). A unit's blocks
/// are packed in increasing `pc` from 0 on one thread, with one `scratch` the packer may fill
/// at `pc == 0` and read afterwards. `bias[r]` starts row `r` of every
/// item; without it C is overwritten (and never read).
///
/// B is packed a column range `(jc, nc)` of `pieces` at a time; the pieces must cover `0..n`
/// without overlap. Every (item, piece) pair is a unit of work, and units run side by side on
/// the current rayon pool when the product is large enough.
///
/// # Panics
/// If `c`'s items are not `a.m x n`, `bias` is shorter than `a.m`, or a piece reaches past `n`.
pub(crate) fn gemm_implicit(
    a: &PackedA,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    mut c: MatBatchMut<'_>,
    pieces: &[(usize, usize)],
    pack_b: impl Fn(usize, usize, usize, usize, usize, &mut Vec<f32>, &mut [f32]) + Sync,
) {
    let (m, k) = (a.m, a.k);
    let (items, n) = (c.batch(), c.item_shape().1);
    assert_eq!(c.item_shape().0, m, "gemm_implicit: C rows");
    if let Some(b) = bias {
        assert!(
            b.len() >= m,
            "gemm_implicit: bias of {} for {m} rows",
            b.len()
        );
    }
    if m == 0 || n == 0 || items == 0 {
        return;
    }
    let (data, batch_stride, [rows, cols, row_stride, col_stride]) = c.parts();
    let base = RawMatMut {
        ptr: data.as_mut_ptr(),
        rows,
        cols,
        row_stride,
        col_stride,
    };
    let kernel = a.kernel;
    let nr = kernel.nr;
    assert!(
        pieces.iter().all(|&(jc, nc)| jc + nc <= n),
        "gemm_implicit: pieces past {n} columns"
    );
    let kc_max = even_depth(k, kernel.kc);
    let flops = 2 * m * k * n * items;
    let threads = rayon::current_num_threads();
    let parallel = flops >= PARALLEL_MIN_FLOPS && threads > 1;
    // Too few (item, piece) pairs to keep every thread busy (one image of a deep layer: a
    // 14x14 or 7x7 output is one piece): cut A's rows into blocks as well, each packing its
    // own B. A row block is a whole number of MR panels, so every element of C still comes
    // from the same micro-kernel calls and results do not depend on the split.
    let pairs = items * pieces.len();
    let panels = m.div_ceil(kernel.mr);
    let row_blocks = if parallel && pairs < threads {
        threads.div_ceil(pairs).min(panels)
    } else {
        1
    };
    let block_rows = panels.div_ceil(row_blocks) * kernel.mr;
    let run_unit = |unit: usize| {
        let (pair, row_block) = (unit / row_blocks, unit % row_blocks);
        let (item, (jc, nc)) = (pair / pieces.len(), pieces[pair % pieces.len()]);
        let row0 = row_block * block_rows;
        if row0 >= m {
            return;
        }
        let rows = block_rows.min(m - row0);
        let c_unit = base.offset(item * batch_stride).block(row0, jc, rows, nc);
        if bias.is_some() || k == 0 {
            // SAFETY: this unit's block of C is written by this unit only: items are disjoint
            // (MatBatchMut), pieces split columns and row blocks split rows.
            unsafe { fill_rows(c_unit, |r| bias.map_or(0.0, |b| b[row0 + r])) };
        }
        with_buffers(|buffers| {
            let scratch = &mut buffers.packer;
            let packed_b = aligned(&mut buffers.b, nc.div_ceil(nr) * nr * kc_max);
            // LOOP 4 (pc): KC-deep blocks of the reduction; each packs one block of B.
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let packed_b = &mut packed_b[..nc.div_ceil(nr) * nr * kc];
                pack_b(item, pc, kc, jc, nc, scratch, packed_b);
                let beta = if pc == 0 && bias.is_none() { 0.0 } else { 1.0 };
                // SAFETY: this unit's block of C is `rows x nc` and written by this unit
                // only; the B block was packed as `multiply_block` requires.
                unsafe {
                    multiply_block(
                        &kernel,
                        |row| a.panel(pc, kc, row0 + row).as_ptr(),
                        kc,
                        packed_b,
                        beta,
                        c_unit,
                    )
                };
            }
        });
        if epilogue != Epilogue::Identity {
            // SAFETY: as for the fill above: this unit's block is its own, and complete now.
            unsafe { map_rows(c_unit, |row| epilogue.apply(row)) };
        }
    };
    let units = pairs * row_blocks;
    if parallel && units > 1 {
        (0..units).into_par_iter().for_each(run_unit);
    } else {
        (0..units).for_each(run_unit);
    }
}

/// `C = sum over b of A_b * B_b` (C is `m x n`, overwritten), the reduction cut into blocks:
/// block `b` is `depths[b]` deep (at most 256), `a_block(b)` its `m x depths[b]` A, and
/// `pack_b(b, jc, nc, scratch, out)` must write columns `jc..jc + nc` of its B (`depths[b] x
/// n`) into `out` as `ceil(nc / NR)` micro-panels of `depths[b] x NR` floats, `p`-major, with
/// columns past `nc` zero (`NR` is [`sum_nr`]); `scratch` is the packer's to use.
///
/// Blocks are summed in order; with `split_columns`, threads split C's columns on
/// micro-panel boundaries (each part then packs every block's A and its own columns of B).
///
/// # Panics
/// If a depth exceeds 256, `a_block(b)` is not `m x depths[b]`, or `c` is not `m x n`.
pub(crate) fn gemm_sum<'a>(
    isa: Isa,
    depths: &[usize],
    a_block: impl Fn(usize) -> MatRef<'a> + Sync,
    pack_b: impl Fn(usize, usize, usize, &mut Vec<f32>, &mut [f32]) + Sync,
    mut c: MatMut<'_>,
    split_columns: bool,
) {
    let (m, n) = (c.rows(), c.cols());
    let kernel = MicroKernel::for_convolution(isa, m);
    let (mr, nr) = (kernel.mr, kernel.nr);
    assert!(
        depths.iter().all(|&d| d <= kernel.kc),
        "gemm_sum: blocks deeper than KC"
    );
    if m == 0 || n == 0 {
        return;
    }
    let base = raw_of(&mut c);
    let m_pad = m.div_ceil(mr) * mr;
    let k: usize = depths.iter().sum();
    let parts = if split_columns && 2 * m * n * k >= PARALLEL_MIN_FLOPS {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let chunk = n.div_ceil(parts).div_ceil(nr) * nr;
    let run_part = |part: usize| {
        let j0 = part * chunk;
        let nc = chunk.min(n - j0);
        let c_part = base.block(0, j0, m, nc);
        if k == 0 {
            // SAFETY: this part's columns of C are written by this part only.
            unsafe { fill_rows(c_part, |_| 0.0) };
            return;
        }
        with_buffers(|buffers| {
            let scratch = &mut buffers.packer;
            let packed_a = aligned(&mut buffers.a, m_pad * kernel.kc);
            let packed_b = aligned(&mut buffers.b, nc.div_ceil(nr) * nr * kernel.kc);
            let mut first = true;
            // LOOP 4 (pc): the blocks of the reduction, in order.
            for (b, &kc) in depths.iter().enumerate() {
                if kc == 0 {
                    continue;
                }
                let a_b = a_block(b);
                assert_eq!((a_b.rows(), a_b.cols()), (m, kc), "gemm_sum: A block shape");
                let packed_a = &mut packed_a[..m_pad * kc];
                (kernel.pack_a)(a_b, packed_a);
                let packed_b = &mut packed_b[..nc.div_ceil(nr) * nr * kc];
                pack_b(b, j0, nc, scratch, packed_b);
                let beta = if first { 0.0 } else { 1.0 };
                first = false;
                // SAFETY: this part's columns of C are written by this part only; both blocks
                // were packed as `multiply_block` requires.
                unsafe {
                    multiply_block(
                        &kernel,
                        |row| packed_a[row * kc..].as_ptr(),
                        kc,
                        packed_b,
                        beta,
                        c_part,
                    )
                };
            }
        });
    };
    let blocks = n.div_ceil(chunk);
    if blocks > 1 {
        (0..blocks).into_par_iter().for_each(run_part);
    } else {
        run_part(0);
    }
}

/// The micro-panel width `pack_b` must write for a [`gemm_sum`] with `m` rows on `isa`.
pub(crate) fn sum_nr(isa: Isa, m: usize) -> usize {
    MicroKernel::for_convolution(isa, m).nr
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix written where [`PackedLayout::index`] says is the matrix [`PackedA::new`]
    /// packs, float for float (padding rows zero), for every ISA here: ragged panels, one
    /// and several KC blocks, a last block shallower than the others.
    #[test]
    fn laying_out_by_index_matches_packing() {
        for isa in Isa::available() {
            for (m, k) in [(1, 1), (7, 17), (12, 63), (17, 65), (64, 300), (65, 577)] {
                let a: Vec<f32> = (0..m * k).map(|i| (i % 101) as f32 - 50.0).collect();
                let packed = PackedA::new(isa, MatRef::row_major(&a, m, k).unwrap());
                let layout = PackedLayout::of(isa, m, k);
                let mut laid = vec![f32::NAN; layout.len()];
                for row in 0..layout.m_pad {
                    for col in 0..k {
                        laid[layout.index(row, col)] = if row < m { a[row * k + col] } else { 0.0 };
                    }
                }
                assert!(
                    laid.iter().all(|v| !v.is_nan()),
                    "{isa:?} {m}x{k}: index() misses a slot"
                );
                let wrapped = PackedA::from_laid_out(isa, m, k, laid);
                assert_eq!(wrapped.data, packed.data, "{isa:?} {m}x{k}");
                assert_eq!(
                    wrapped.blocks().collect::<Vec<_>>(),
                    packed.blocks().collect::<Vec<_>>()
                );
            }
        }
    }
}
