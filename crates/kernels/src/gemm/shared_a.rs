//! A whole packed A shared by the threads of a column-split product, packed piece by piece
//! by whichever threads need it first, inside the product's one parallel section.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::blocking::even_depth;
use super::microkernel::{MicroKernel, PackFn};
use super::view::MatRef;

/// One piece of a whole packed A: the view it packs and where its floats go.
pub(crate) struct Piece<'a> {
    pub(crate) view: MatRef<'a>,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// The pieces of all of A packed for `kernel` (`ceil(m / mr) * mr * k` floats in all), in
/// order: for each [`even_depth`] block of `k`, the MR-row panels of all the rows in pieces of
/// at most `rows_per` rows (a multiple of MR), each `rows * kc` floats.
pub(crate) fn pieces<'a>(kernel: &MicroKernel, a: MatRef<'a>, rows_per: usize) -> Vec<Piece<'a>> {
    let (m, k) = (a.rows(), a.cols());
    let m_pad = m.div_ceil(kernel.mr) * kernel.mr;
    assert!(
        rows_per > 0 && rows_per.is_multiple_of(kernel.mr),
        "packed A: pieces of {rows_per} rows for {}-row panels",
        kernel.mr
    );
    let depth = even_depth(k, kernel.kc);
    let mut pieces = Vec::new();
    let mut start = 0;
    for pc in (0..k).step_by(depth) {
        let kc = depth.min(k - pc);
        for row in (0..m_pad).step_by(rows_per) {
            let rows = rows_per.min(m_pad - row);
            let view = a.block(row, pc, m.min(row + rows) - row, kc);
            pieces.push(Piece {
                view,
                start,
                len: rows * kc,
            });
            start += rows * kc;
        }
    }
    pieces
}

/// All of A packed in [`super::driver::gemm_serial`]'s block order (KC-deep blocks in
/// order, each its rows in order), in pieces of a thread's share of the rows.
///
/// Packing A in a parallel section of its own before the product made the threads meet
/// twice: on a 2-core Xeon, 128x1152x784 at 2 threads spent 60 of its 880 µs in that
/// section, while the second thread was still waking up. Here a thread that needs a
/// piece nobody has packed yet packs the next unclaimed ones itself, in order, while the
/// other thread packs its own B block; a piece claimed by another thread is being packed
/// by a running thread, so waiting for it always ends; if that thread panics instead, the
/// waiting ones panic too rather than wait forever.
pub(crate) struct SharedPackedA<'a> {
    data: *mut f32,
    len: usize,
    pieces: Vec<Piece<'a>>,
    claimed: AtomicUsize,
    ready: Vec<AtomicBool>,
    /// Set when a thread panicked while packing a piece, which will then never be ready.
    failed: AtomicBool,
    pack: PackFn,
    /// The buffer stays borrowed while the pieces are written and read through `data`.
    buffer: PhantomData<&'a mut Vec<f32>>,
}

// SAFETY: the buffer behind `data` is written only through `pack_next`, each piece by the one
// thread whose claim returned its index, and read (in `floats`) only after that piece's
// `ready` flag is seen set with Acquire ordering, which the writer set with Release after
// writing; pieces are disjoint, so no float is ever written while it is read.
unsafe impl Sync for SharedPackedA<'_> {}

impl<'a> SharedPackedA<'a> {
    /// The pieces of `a` packed for `kernel` into `buffer` (resized to `ceil(m / mr) * mr * k`
    /// floats), each at most `rows_per` rows (a multiple of MR); nothing is packed yet.
    pub(crate) fn new(
        kernel: &MicroKernel,
        a: MatRef<'a>,
        rows_per: usize,
        buffer: &'a mut Vec<f32>,
    ) -> SharedPackedA<'a> {
        let m_pad = a.rows().div_ceil(kernel.mr) * kernel.mr;
        buffer.resize(m_pad * a.cols(), 0.0);
        let pieces = pieces(kernel, a, rows_per);
        let ready = pieces.iter().map(|_| AtomicBool::new(false)).collect();
        SharedPackedA {
            data: buffer.as_mut_ptr(),
            len: buffer.len(),
            pieces,
            claimed: AtomicUsize::new(0),
            ready,
            failed: AtomicBool::new(false),
            pack: kernel.pack_a,
            buffer: PhantomData,
        }
    }

    /// The packed floats `at..at + len`, packing (or waiting for) the pieces that hold them.
    pub(crate) fn floats(&self, at: usize, len: usize) -> &[f32] {
        assert!(
            at + len <= self.len,
            "SharedPackedA: floats {at}..{} of {}",
            at + len,
            self.len
        );
        if len > 0 {
            // The pieces are in order and cover the buffer: those from the one holding `at`
            // to the one holding the last float.
            let first = self.pieces.partition_point(|p| p.start + p.len <= at);
            let last = self.pieces.partition_point(|p| p.start + p.len < at + len);
            for index in first..=last.min(self.pieces.len() - 1) {
                while !self.ready[index].load(Ordering::Acquire) {
                    assert!(
                        !self.failed.load(Ordering::Acquire),
                        "SharedPackedA: another thread panicked while packing A"
                    );
                    if !self.pack_next() {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        // SAFETY: every piece overlapping the range is packed (its flag was seen set with
        // Acquire after its packer's Release), no piece is written twice, and the range lies
        // inside the buffer (asserted above), which outlives `self`.
        unsafe { std::slice::from_raw_parts(self.data.add(at), len) }
    }

    /// Claims and packs the next unclaimed piece; false if every piece is already claimed.
    fn pack_next(&self) -> bool {
        if self.claimed.load(Ordering::Relaxed) >= self.pieces.len() {
            return false;
        }
        let index = self.claimed.fetch_add(1, Ordering::Relaxed);
        let Some(piece) = self.pieces.get(index) else {
            return false;
        };
        // SAFETY: the claim gave this thread alone the piece's disjoint range of the buffer,
        // which nobody reads before its flag is set below.
        let out = unsafe { std::slice::from_raw_parts_mut(self.data.add(piece.start), piece.len) };
        let failed_on_unwind = FailOnUnwind(&self.failed);
        (self.pack)(piece.view, out);
        std::mem::forget(failed_on_unwind);
        self.ready[index].store(true, Ordering::Release);
        true
    }
}

/// Sets its flag when dropped, which happens only if the packing it guards unwinds.
struct FailOnUnwind<'f>(&'f AtomicBool);

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::GemmKernel;
    use crate::gemm::driver::pack_a_whole;
    use rayon::prelude::*;

    /// A packer that panics on one piece makes a thread waiting for that piece panic too,
    /// instead of waiting forever.
    #[test]
    fn a_panic_while_packing_reaches_the_waiting_thread() {
        fn refuse(_: MatRef<'_>, _: &mut [f32]) {
            panic!("this packer refuses");
        }
        let kernel = MicroKernel {
            pack_a: refuse,
            ..MicroKernel::of(GemmKernel::Portable, 16)
        };
        let data = vec![1.0f32; 16 * 8];
        let a = MatRef::row_major(&data, 16, 8).unwrap();
        let mut buffer = Vec::new();
        let shared = SharedPackedA::new(&kernel, a, kernel.mr, &mut buffer);
        // The first piece is claimed (and its packing panics) before the second thread asks.
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared.floats(0, 1);
        }));
        assert!(first.is_err(), "the packing thread did not panic");
        let waiting = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared.floats(0, 1);
        }));
        let message = waiting.expect_err("the waiting thread returned");
        let text = message
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| message.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(text.contains("another thread panicked"), "{text}");
    }

    /// Threads asking for ranges in different orders, across piece edges, all read what
    /// packing the whole of A at once writes.
    #[test]
    fn every_range_reads_the_packed_a_whatever_order_threads_ask() {
        for candidate in GemmKernel::available() {
            let kernel = MicroKernel::of(candidate, 37);
            // Odd rows (a ragged last panel) and three depth blocks, the last one shallower.
            let (m, k) = (37, 2 * kernel.kc + 7);
            let data: Vec<f32> = (0..m * k).map(|i| (i % 251) as f32 - 125.0).collect();
            let a = MatRef::row_major(&data, m, k).unwrap();
            let m_pad = m.div_ceil(kernel.mr) * kernel.mr;
            let mut want = vec![f32::NAN; m_pad * k];
            pack_a_whole(&kernel, a, kernel.mr, &mut want);
            let mut buffer = Vec::new();
            let shared = SharedPackedA::new(&kernel, a, kernel.mr * 2, &mut buffer);
            let total = m_pad * k;
            // Ranges of odd sizes, from the back for some threads and the front for others.
            let cuts: Vec<(usize, usize)> = (0..total)
                .step_by(997)
                .map(|at| (at, 1500.min(total - at)))
                .collect();
            (0..4usize).into_par_iter().for_each(|thread| {
                let order: Vec<_> = if thread % 2 == 0 {
                    cuts.clone()
                } else {
                    cuts.iter().rev().copied().collect()
                };
                for (at, len) in order {
                    let got = shared.floats(at, len);
                    assert!(
                        crate::test_data::same_bits(got, &want[at..at + len]),
                        "{candidate}: floats {at}..{} differ from the whole packing",
                        at + len
                    );
                }
            });
        }
    }
}
