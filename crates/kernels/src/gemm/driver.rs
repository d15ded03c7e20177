//! The single-threaded BLIS driver: five loops around a micro-kernel.

use std::cell::RefCell;

use super::blocking::{TileOrder, even_depth, even_width};
use super::in_place_b;
use super::microkernel::{BPanel, CTile, MicroKernel, Prefetch};
use super::shared_a::{self, SharedPackedA};
use super::view::MatRef;

/// A writable matrix as a raw pointer, so disjoint blocks of one C can go to different
/// threads. Built only from a validated [`super::view::MatMut`], whose strides never alias.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMatMut {
    pub ptr: *mut f32,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

// SAFETY: a RawMatMut is only handed to threads in disjoint blocks (see `gemm_on`), so no two
// threads ever access the same element; the pointer itself is plain data.
unsafe impl Send for RawMatMut {}
// SAFETY: as above; shared references to the struct only copy the pointer.
unsafe impl Sync for RawMatMut {}

impl RawMatMut {
    /// The `rows x cols` block starting at `(i, j)`; the caller keeps it inside `self`.
    pub(crate) fn block(&self, i: usize, j: usize, rows: usize, cols: usize) -> RawMatMut {
        debug_assert!(i + rows <= self.rows && j + cols <= self.cols);
        RawMatMut {
            ptr: self
                .ptr
                .wrapping_add(i * self.row_stride + j * self.col_stride),
            rows,
            cols,
            ..*self
        }
    }

    /// The same shape starting `elements` further on (the next item of a batch).
    pub(crate) fn offset(&self, elements: usize) -> RawMatMut {
        RawMatMut {
            ptr: self.ptr.wrapping_add(elements),
            ..*self
        }
    }

    /// The micro-kernel's view of the `rows x cols` tile at `(i, j)`.
    pub(crate) fn tile(&self, i: usize, j: usize, rows: usize, cols: usize) -> CTile {
        let block = self.block(i, j, rows, cols);
        CTile {
            ptr: block.ptr,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
            rows,
            cols,
        }
    }
}

#[cfg(test)]
impl RawMatMut {
    /// All of `c` as a row-major `rows x cols` matrix, for tests.
    pub(crate) fn row_major(c: &mut [f32], rows: usize, cols: usize) -> RawMatMut {
        assert_eq!(
            c.len(),
            rows * cols,
            "RawMatMut::row_major: {rows} x {cols}"
        );
        RawMatMut {
            ptr: c.as_mut_ptr(),
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }
}

/// Per-thread packing buffers, reused across calls so a GEMM allocates only on first use.
#[derive(Default)]
struct PackBuffers {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static PACK_BUFFERS: RefCell<PackBuffers> = RefCell::new(PackBuffers::default());
}

/// A 64-byte-aligned window of `len` floats inside `buf`, growing it if needed.
pub(super) fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const ALIGN_FLOATS: usize = 16;
    if buf.len() < len + ALIGN_FLOATS {
        buf.resize(len + ALIGN_FLOATS, 0.0);
    }
    let offset = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS);
    &mut buf[offset..offset + len]
}

/// Columns of a packed B block when it is used only once (see `gemm_serial`): 1024 columns of
/// up to 256 rows are 1 MiB, streamed through L2 (while the next block is prefetched, where
/// it is). Measured against 256, 512 and 3072 on a Zen 4 core: best on the VGG 64x576x3136
/// and ResNet-20 16x144x65536 shapes; on a Zen 3, without the prefetch, against 256, 512 and
/// 2048: best or level on those and 128x1152x784 and 128x4096x4096.
const NC_STREAMED: usize = 1024;

/// Packs all of A into `out` (`ceil(m / mr) * mr * k` floats, every one written): for each
/// [`even_depth`] block of `k` in order, the MR-row panels of all the rows, in pieces of
/// `rows_per` rows (a multiple of MR) that the threads pack side by side. With `rows_per` =
/// MC these are [`gemm_serial`]'s blocks; the implicit GEMM's `PackedA` reads any.
pub(crate) fn pack_a_whole(kernel: &MicroKernel, a: MatRef<'_>, rows_per: usize, out: &mut [f32]) {
    let m_pad = a.rows().div_ceil(kernel.mr) * kernel.mr;
    assert_eq!(
        out.len(),
        m_pad * a.cols(),
        "pack_a_whole: floats for {} x {}",
        a.rows(),
        a.cols()
    );
    let mut pieces = Vec::new();
    let mut rest = out;
    for piece in shared_a::pieces(kernel, a, rows_per) {
        let (floats, tail) = rest.split_at_mut(piece.len);
        rest = tail;
        pieces.push((piece.view, floats));
    }
    let pack = kernel.pack_a;
    if rayon::current_num_threads() > 1 && pieces.len() > 1 {
        use rayon::prelude::*;
        pieces
            .into_par_iter()
            .for_each(|(view, piece)| pack(view, piece));
    } else {
        for (view, piece) in pieces {
            pack(view, piece);
        }
    }
}

/// `C = alpha * A * B + beta * C` on one thread, for `k > 0`, reading A's blocks from
/// `packed` (a [`SharedPackedA`] of `a` for the same kernel) where given instead of packing
/// them. With a shared A of one block of rows, the tiles from `first_row` (rounded down to
/// a tile) run first and the rows before it after, so that a thread starts on the piece of A
/// it packs rather than wait for the first one; the order changes no bits.
///
/// # Safety
/// `c` must describe `a.rows() x b.cols()` writable, non-aliasing elements that no other
/// thread touches during the call, and `a.cols() == b.rows()`.
// The BLIS arguments plus the shared packed A and where this thread starts in it.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_serial(
    kernel: &MicroKernel,
    alpha: f32,
    a: MatRef<'_>,
    packed: Option<&SharedPackedA<'_>>,
    b: MatRef<'_>,
    beta: f32,
    c: RawMatMut,
    first_row: usize,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let MicroKernel {
        mr,
        nr,
        kc,
        mc: mc_max,
        nc: nc_max,
        prefetch_next_b,
        order,
        pack_a,
        pack_b,
        ..
    } = *kernel;
    // KC-deep blocks of equal depth (see `even_depth`).
    let kc_max = even_depth(k, kc);
    // With a single block of rows (m <= MC) each packed B block is used once, right after it is
    // packed: the packing is then a stream from memory that nothing else hides. Keep the block
    // small, and where the L2 has room (`prefetch_next_b`, see `Blocking::derive`) have the
    // micro-kernels prefetch the next one, one line between the FMAs of each k-step (bursts of
    // prefetches stalled on the CPU's miss queue instead).
    let single_row_block = m <= mc_max;
    let nc_max = even_width(
        n,
        if single_row_block {
            nc_max.min(NC_STREAMED)
        } else {
            nc_max
        },
        kernel.split_cols,
    );
    // With the A panel in L1, only products one block deep prefetch (the next block is then
    // the next block of columns). On a Xeon (two 512-bit FMA ports) prefetching the next
    // depth block cost more than it saved: without it 64x576x3136, 128x4096x4096 and
    // 16x576x65536 ran 1.06x, 1.07x and 1.28x as fast at 1 thread, and 1.01-1.08x against
    // prefetching only the next column block from each last depth block; 16x144x65536 kept
    // its 1.05x from the prefetch.
    let prefetches = single_row_block
        && prefetch_next_b
        && b.col_stride() == 1
        && (order == TileOrder::BPanelInL1 || k <= kc_max);
    // Room to pack one A block, unless every block arrives packed.
    let a_len = if packed.is_some() {
        0
    } else {
        mc_max.min(m).div_ceil(mr) * mr * kc_max.min(k)
    };
    let b_len = nc_max.min(n).div_ceil(nr) * nr * kc_max.min(k);

    let mut local = None;
    PACK_BUFFERS.with(|cell| {
        let mut guard = cell.try_borrow_mut().ok();
        let buffers = match guard.as_deref_mut() {
            Some(buffers) => buffers,
            None => local.insert(PackBuffers::default()),
        };
        let packed_a = aligned(&mut buffers.a, a_len);
        if in_place_b::applies(kernel, m, b) {
            let ragged = aligned(&mut buffers.b, kernel.nr * k);
            // SAFETY: forwarded from the caller; `applies` keeps k and m within one block
            // (KC, MC), so `packed_a` holds all of A's panels unless they arrive packed.
            unsafe {
                in_place_b::multiply(kernel, alpha, a, packed, b, beta, c, (packed_a, ragged))
            };
            return;
        }
        let packed_b = aligned(&mut buffers.b, b_len);

        // LOOP 5 (jc): split n into NC-column blocks; the packed B block lives in L3.
        for jc in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - jc);
            // Offset of the next block in `packed`, which holds them in loop order.
            let mut shared_at = 0;
            // LOOP 4 (pc): split k into KC-deep blocks; beta applies to the first one only.
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let beta_p = if pc == 0 { beta } else { 1.0 };
                pack_b(b.block(pc, jc, kc, nc), packed_b);
                let next_b = if !prefetches {
                    None
                } else if pc + kc < k {
                    Some(b.block(pc + kc, jc, kc_max.min(k - pc - kc), nc))
                } else if jc + nc < n {
                    Some(b.block(0, jc + nc, kc_max.min(k), nc_max.min(n - jc - nc)))
                } else {
                    None
                };
                // LOOP 3 (ic): split m into MC-row blocks; the packed A block lives in L2
                // (with the A panel in L1 and A packed here, only a panel at a time, in L1).
                for ic in (0..m).step_by(mc_max) {
                    let mc = mc_max.min(m - ic);
                    let row_panels = mc.div_ceil(mr);
                    let a_block_len = row_panels * mr * kc;
                    // Where another thread packs the first rows of a shared A, this one
                    // starts at its own (`first_row`) and comes back to them, by then packed.
                    let split = match packed {
                        Some(_) if mc == m => (first_row / mr).min(row_panels),
                        _ => 0,
                    };
                    let c_block = c.block(ic, jc, mc, nc);
                    let col_panels = nc.div_ceil(nr);
                    // With the A panel in L1, a thread that packs A itself packs each panel
                    // just before its row of tiles: the panel stays in L1, and the packed
                    // block no longer shares L2 with the B block. On the Xeon (family 6
                    // model 0xa7, alternating in one process, 1 thread) 1024^3 ran 1.02-1.05x
                    // as fast, 2048^3, 128x1152x784 and 64x576x3136 1.01-1.02x.
                    let panel_by_panel = packed.is_none() && order == TileOrder::APanelInL1;
                    let parts = if panel_by_panel { row_panels } else { 2 };
                    let part = |index: usize| match (panel_by_panel, index) {
                        (true, _) => (index, index + 1),
                        (false, 0) => (split, row_panels),
                        (false, _) => (0, split),
                    };
                    for (from, to) in (0..parts).map(part) {
                        if from == to {
                            continue;
                        }
                        let part_len = (to - from) * mr * kc;
                        let rows = (to * mr).min(mc) - from * mr;
                        let packed_a: &[f32] = match packed {
                            Some(all) => all.floats(shared_at + from * mr * kc, part_len),
                            None => {
                                let out = &mut packed_a[..part_len];
                                pack_a(a.block(ic + from * mr, pc, rows, kc), out);
                                out
                            }
                        };
                        // SAFETY: the A part holds `to - from` panels of kc * mr floats and the
                        // B block ceil(nc / nr) panels of kc * nr; the block of C is this
                        // thread's.
                        unsafe {
                            sweep_tiles(
                                kernel,
                                alpha,
                                kc,
                                |ir| packed_a[ir * kc..(ir + mr) * kc].as_ptr(),
                                packed_b,
                                beta_p,
                                c_block.block(from * mr, 0, rows, nc),
                                // A call's share of the next block, for it to prefetch a
                                // line at a time between its FMAs; the shares are the whole
                                // block's, whichever rows this part has.
                                |index, shares| {
                                    let (index, shares) = match order {
                                        TileOrder::APanelInL1 => {
                                            (index + from * col_panels, row_panels * col_panels)
                                        }
                                        TileOrder::BPanelInL1 => (index, shares),
                                    };
                                    next_b.map_or(Prefetch::NONE, |next| {
                                        Prefetch::share_of(next, index, shares, kc)
                                    })
                                },
                            )
                        };
                    }
                    shared_at += a_block_len;
                }
            }
        }
    });
}

/// LOOPS 2 and 1: the micro-kernel over every `MR x NR` tile of the block `c`, for one
/// packed B block `kc` deep (`packed_b`: `ceil(c.cols / NR)` panels of `kc x NR` floats) and
/// the packed A panels `a_panel(ir)` of rows `ir..ir + MR`, in the kernel's [`TileOrder`]
/// (with the A panel in L1 every panel sweeps the whole B block, which the kernel's NC keeps
/// in L2).
/// `prefetch(index, shares)` is share `index` of `shares` of a prefetch stream, which the
/// calls run spread over the sweep.
///
/// # Safety
/// `c` must describe writable elements that no other thread touches during the call, and
/// every `a_panel(ir)` for `ir` a multiple of MR below `c.rows` must point at `kc * MR`
/// readable floats.
// The BLIS arguments of a block (alpha, beta, depth, both panels, C) plus the prefetch stream.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sweep_tiles(
    kernel: &MicroKernel,
    alpha: f32,
    kc: usize,
    a_panel: impl Fn(usize) -> *const f32,
    packed_b: &[f32],
    beta: f32,
    c: RawMatMut,
    prefetch: impl Fn(usize, usize) -> Prefetch,
) {
    let (m, n, mr, nr) = (c.rows, c.cols, kernel.mr, kernel.nr);
    let (row_panels, col_panels) = (m.div_ceil(mr), n.div_ceil(nr));
    let call = |ir: usize, jr: usize| {
        let tile = c.tile(ir, jr, mr.min(m - ir), nr.min(n - jr));
        let stream = match kernel.order {
            // One share per B panel, for its first call: spread evenly over the block.
            TileOrder::BPanelInL1 if ir == 0 => prefetch(jr / nr, col_panels),
            TileOrder::BPanelInL1 => Prefetch::NONE,
            // The calls of one A panel are all of one sweep of the block, and the first
            // sweep may be all the work there is: one share per call.
            TileOrder::APanelInL1 => {
                prefetch((ir / mr) * col_panels + jr / nr, row_panels * col_panels)
            }
        };
        let b_panel = BPanel {
            ptr: packed_b[jr * kc..(jr + nr) * kc].as_ptr(),
            row_stride: nr,
            prefetch: stream,
        };
        // SAFETY: the A panel holds kc * mr floats (the caller's contract), the B panel kc
        // rows of nr packed floats (checked by the slice above); the tile lies inside the
        // caller's block of C.
        unsafe { (kernel.run)(kc, alpha, a_panel(ir), b_panel, beta, &tile) };
    };
    match kernel.order {
        TileOrder::BPanelInL1 => {
            // LOOP 2 (jr): NR-column micro-panels of B; one stays in L1.
            for jr in (0..n).step_by(nr) {
                // LOOP 1 (ir): MR-row micro-panels of A, one micro-kernel call each.
                for ir in (0..m).step_by(mr) {
                    call(ir, jr);
                }
            }
        }
        TileOrder::APanelInL1 => {
            // LOOP 2 (ir): MR-row micro-panels of A; one stays in L1.
            for ir in (0..m).step_by(mr) {
                // LOOP 1 (jr): NR-column micro-panels of B, one call each.
                for jr in (0..n).step_by(nr) {
                    call(ir, jr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::GemmKernel;
    use crate::test_data::{operands, same_bits, with_operands};

    /// `C = A * B` by [`gemm_serial`] on this thread, over C full of NaN.
    fn serial(
        kernel: &MicroKernel,
        a: MatRef<'_>,
        packed: Option<&SharedPackedA<'_>>,
        b: MatRef<'_>,
        first_row: usize,
    ) -> Vec<f32> {
        let (m, n) = (a.rows(), b.cols());
        let mut c = vec![f32::NAN; m * n];
        let raw = RawMatMut::row_major(&mut c, m, n);
        // SAFETY: `raw` covers `c`, owned here; the shapes agree.
        unsafe { gemm_serial(kernel, 1.0, a, packed, b, 0.0, raw, first_row) };
        c
    }

    /// Starting a product over a shared packed A at any row gives the bits of packing A
    /// itself, a block or a panel at a time: rows from the first, past a tile, mid-way, at
    /// the last tile and beyond the last row, for a ragged m, in both tile orders.
    #[test]
    fn starting_at_a_later_row_changes_no_bits() {
        let (m, k, n) = (53, 300, 70);
        with_operands(m, k, n, |a, b| {
            for candidate in GemmKernel::available() {
                let kernel = MicroKernel::of(candidate, m);
                let product = |order: TileOrder, shared: bool, first_row: usize| {
                    let kernel = MicroKernel { order, ..kernel };
                    let mut buffer = Vec::new();
                    let packed = SharedPackedA::new(&kernel, a, kernel.mr, &mut buffer);
                    serial(&kernel, a, shared.then_some(&packed), b, first_row)
                };
                // Packing A itself: a block at a time (B panel in L1) or a panel at a time
                // (A panel in L1).
                let want = product(TileOrder::BPanelInL1, false, 0);
                assert!(
                    same_bits(&product(TileOrder::APanelInL1, false, 0), &want),
                    "{candidate}: packing A a panel at a time changed the result"
                );
                for order in [TileOrder::APanelInL1, TileOrder::BPanelInL1] {
                    for first_row in [0, 1, kernel.mr, m / 2, m - 1, m, 2 * m] {
                        assert!(
                            same_bits(&product(order, true, first_row), &want),
                            "{candidate}, {order:?}: starting at row {first_row} changed the result"
                        );
                    }
                }
            }
        });
    }

    /// Whether the micro-kernels prefetch the next B block is a choice of speed only: every
    /// candidate gives the same bits with and without it, and with it runs the prefetching
    /// loops that a core with a small L2 never reaches: of the next column block in a
    /// product one block deep, and (with the B panel in L1) of the next depth block.
    #[test]
    fn prefetching_the_next_b_block_changes_no_bits() {
        // One block of rows, B in several NC blocks, ragged; one KC block deep or several.
        let (m, n) = (13, 2100);
        let kc = MicroKernel::of(GemmKernel::Portable, m).kc;
        for k in [kc - 13, kc + 44] {
            let (a, b) = operands(m, k, n);
            let (a, b) = (
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&b, k, n).unwrap(),
            );
            let product = |kernel: &MicroKernel| serial(kernel, a, None, b, 0);
            for candidate in GemmKernel::available() {
                let kernel = MicroKernel::of(candidate, m);
                assert!(m <= kernel.mc && n > NC_STREAMED && kernel.kc == kc);
                for order in [TileOrder::BPanelInL1, TileOrder::APanelInL1] {
                    let kernel = MicroKernel { order, ..kernel };
                    let on = product(&MicroKernel {
                        prefetch_next_b: true,
                        ..kernel
                    });
                    let off = product(&MicroKernel {
                        prefetch_next_b: false,
                        ..kernel
                    });
                    assert!(
                        same_bits(&on, &off),
                        "{candidate}, {order:?}, k {k}: the prefetch changed the result"
                    );
                    // And the result is the product: spot-check a column of each NC block.
                    for j in [0, 1023, 1024, 2047, 2099] {
                        for i in 0..m {
                            let want: f64 = (0..k)
                                .map(|p| f64::from(a.get(i, p)) * f64::from(b.get(p, j)))
                                .sum();
                            let got = f64::from(on[i * n + j]);
                            assert!(
                                (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                                "{candidate}, {order:?}, k {k} ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
