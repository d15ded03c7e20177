//! Products whose B elements each meet few tiles read B where it lies.
//!
//! A product one depth block deep (`k <= KC`) whose rows make few tiles multiplies each
//! element of B a few times. Packing B first then costs more than it saves: the packing
//! pass reads all of B from memory and writes it again, and on a Xeon with two 512-bit FMA
//! ports (family 6 model 0xa7) copying into a buffer that stays in L2 ran at about half the
//! speed of reading alone (14.5 against 29 GB/s at 1 thread). Here each full-width tile
//! reads its B panel straight from the row-major B (the micro-kernels take any row stride),
//! the next panel (where B streams from memory, the next group of panels: see
//! [`PREFETCH_RUN_COLUMNS`]) is prefetched a share per tile, and only a ragged last panel and
//! a narrow first one that brings the others onto cache lines are packed. The tiles, the
//! depth and the order of every sum are the packed path's, so the bits are the same. How
//! many tiles of rows is few depends on the tile: see `MicroKernel::b_in_place_panels`.
//!
//! Against packing B, alternating in one process at 1 thread on that Xeon (8 x 48 tile):
//! 16x144x65536 (ResNet-20's first stage as one GEMM) 1.15x, 8x144x65536 1.14x,
//! 6x150x100000 1.23x, 16x144x3136 1.17x, 16x144x16384 1.07x at first; with the prefetch in
//! groups and the lead panel, 24 to 64 rows (three to eight tiles) 1.01-1.29x at 1 thread
//! and 1.01-1.15x at 2. Several depth blocks lose even so, in any order of the loops tried
//! (by panel or by group of panels, prefetching groups of 192 to 1536 columns):
//! 64x576x3136 0.88-0.98x, 16x576x65536 0.77-0.95x.

use super::blocking::CacheSizes;
use super::driver::RawMatMut;
use super::microkernel::{BPanel, MicroKernel, Prefetch};
use super::shared_a::SharedPackedA;
use super::view::MatRef;

/// Whether a product of `m` rows times `b` reads B in place with `kernel`: one block of
/// depth (`k <= KC`) and of rows (`m <= MC`, so the driver's A buffer holds all of A), and
/// no more tiles of rows than the kernel takes.
pub(super) fn applies(kernel: &MicroKernel, m: usize, b: MatRef<'_>) -> bool {
    b.col_stride() == 1
        && b.rows() <= kernel.kc
        && m <= kernel.mc
        && m.div_ceil(kernel.mr) <= kernel.b_in_place_panels
}

/// `C = alpha * A * B + beta * C` for a product that [`applies`], reading A's one block from
/// `packed` (a [`SharedPackedA`] of `a` for the same kernel) where given, else packing it
/// into `packed_a`; `ragged` holds one packed B panel.
///
/// # Safety
/// As for [`super::driver::gemm_serial`]; `k` must be at least 1, `packed_a` must hold
/// `ceil(m / MR) * MR * k` floats unless `packed` is given, and `ragged` `k * NR`.
// The BLIS arguments of a product plus its two scratch buffers.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn multiply(
    kernel: &MicroKernel,
    alpha: f32,
    a: MatRef<'_>,
    packed: Option<&SharedPackedA<'_>>,
    b: MatRef<'_>,
    beta: f32,
    c: RawMatMut,
    (packed_a, ragged): (&mut [f32], &mut [f32]),
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (mr, nr) = (kernel.mr, kernel.nr);
    let row_panels = m.div_ceil(mr);
    let a_len = row_panels * mr * k;
    let packed_a: &[f32] = match packed {
        Some(all) => all.floats(0, a_len),
        None => {
            (kernel.pack_a)(a, &mut packed_a[..a_len]);
            &packed_a[..a_len]
        }
    };
    let ragged = &mut ragged[..k * nr];
    let lead = lead_columns(b, nr);
    // Where panel `index` starts: after the narrow lead panel, if any, every `nr` columns.
    let start = |index: usize| {
        let at = match (lead, index) {
            (0, _) => index * nr,
            (_, 0) => 0,
            _ => lead + (index - 1) * nr,
        };
        at.min(n)
    };
    let group = prefetch_group(k, n, nr, CacheSizes::detect().l2);
    let mut panel = 0;
    while start(panel) < n {
        let (jr, cols) = (start(panel), start(panel + 1) - start(panel));
        let (ptr, row_stride) = if cols == nr {
            (b.block(0, jr, k, nr).data().as_ptr(), b.row_stride())
        } else {
            (kernel.pack_b)(b.block(0, jr, k, cols), ragged);
            (ragged.as_ptr(), nr)
        };
        // The next group's panels, a share of their lines with each tile of this group.
        let first = (panel / group + 1) * group;
        let (from, to) = (start(first), start(first + group));
        let next = (from < to).then(|| b.block(0, from, k, to - from));
        for ir in (0..m).step_by(mr) {
            let share = (panel % group) * row_panels + ir / mr;
            let b_panel = BPanel {
                ptr,
                row_stride,
                prefetch: next.map_or(Prefetch::NONE, |next| {
                    Prefetch::share_of(next, share, group * row_panels, k)
                }),
            };
            let tile = c.tile(ir, jr, mr.min(m - ir), cols);
            // SAFETY: the A panel holds k * mr packed floats; the B panel is k rows of nr
            // floats of `b`, row_stride apart (a full-width block of it), or the packed
            // ragged panel; the tile lies inside C, which the caller gives this thread.
            unsafe { (kernel.run)(k, alpha, packed_a[ir * k..].as_ptr(), b_panel, beta, &tile) };
        }
        panel += 1;
    }
}

/// Columns of B whose lines one row contributes to a prefetch run where B streams from
/// memory: 24 cache lines per row. Prefetched a panel ahead, the next lines lie in runs of
/// one panel's width (three lines for the 8 x 48 tile) in each of `k` rows far apart, and
/// reading B ran at about 13 GB/s of a core's 29. Prefetching the next group of panels
/// as a whole, row by row, makes the runs as long as the group is wide. On a Xeon (family 6
/// model 0xa7, 1 thread, alternating in one process) groups of 384 columns ran
/// 16x144x65536 1.04-1.10x as fast with the 8 x 48 tile and 1.31x with the 16 x 16 one;
/// with the 6 x 32 tile that takes 8 rows or fewer, 8x144x65536 ran 1.14x at 384 columns
/// and 1.13-1.16x at 256, and wider groups lost (0.78x at 1536 columns).
const PREFETCH_RUN_COLUMNS: usize = 384;

/// Panels of `nr` columns per prefetch group for a `k x n` B: those of
/// [`PREFETCH_RUN_COLUMNS`] where B does not fit a core's `l2` bytes of L2 and so streams
/// from memory, else 1 (the next panel). With B in cache the far prefetch only evicted
/// it: 16x144x3136 (1.8 MiB of B) ran 0.89-0.94x as fast with it on that Xeon.
fn prefetch_group(k: usize, n: usize, nr: usize, l2: usize) -> usize {
    if k * n * std::mem::size_of::<f32>() > l2 {
        (PREFETCH_RUN_COLUMNS / nr).max(1)
    } else {
        1
    }
}

/// Columns of B to take as a packed, narrow first panel so that every full panel after it
/// starts on a 64-byte cache line: the first `(64 - address % 64) / 4` columns where all of
/// B's rows share an alignment (a row stride of a multiple of 16 floats, or one row) and
/// the first row does not start on a line, else none. A panel's rows straddling lines cost
/// a third more lines per row and split loads: on a Xeon (family 6 model 0xa7, 8 x 48 tile,
/// alternating in one process) with B 16 bytes past a line, as the system allocator places
/// a `Vec`, the lead panel ran 16x144x3136 1.26x as fast at 1 thread and 1.27x at 2, and
/// 8x144x65536 1.11x / 1.07x; with B streaming from memory (16x144x65536) it was level.
/// Where each tile's columns start changes no bits.
fn lead_columns(b: MatRef<'_>, nr: usize) -> usize {
    const LINE_FLOATS: usize = 16;
    let shared = b.rows() == 1 || b.row_stride().is_multiple_of(LINE_FLOATS);
    let address = b.data().as_ptr() as usize;
    if !shared || !address.is_multiple_of(4) {
        return 0;
    }
    let lead = (LINE_FLOATS - (address / 4) % LINE_FLOATS) % LINE_FLOATS;
    if lead >= nr { 0 } else { lead }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::GemmKernel;
    use crate::gemm::driver::gemm_serial;
    use crate::test_data::{operands, pattern, same_bits};

    /// `alpha * A * B + beta * C` through `gemm_serial` with `kernel`, B `k x n` at row
    /// stride `n + 3`, C starting as `c0`.
    fn product(
        kernel: &MicroKernel,
        (m, k, n): (usize, usize, usize),
        beta: f32,
        c0: f32,
    ) -> Vec<f32> {
        product_at(kernel, (m, k, n), (n + 3, 0), beta, c0)
    }

    /// [`product`] with B at row stride `stride`, starting `skip` floats into its buffer.
    fn product_at(
        kernel: &MicroKernel,
        (m, k, n): (usize, usize, usize),
        (stride, skip): (usize, usize),
        beta: f32,
        c0: f32,
    ) -> Vec<f32> {
        let a = pattern(m * k, 37, 101, 64.0);
        let b = pattern(skip + k * stride, 53, 97, 32.0);
        let a = MatRef::row_major(&a, m, k).unwrap();
        let b = MatRef::new(&b[skip..], k, n, stride, 1).unwrap();
        let mut c = vec![c0; m * n];
        let raw = RawMatMut::row_major(&mut c, m, n);
        // SAFETY: `raw` covers `c`, owned here; the shapes agree.
        unsafe { gemm_serial(kernel, 1.5, a, None, b, beta, raw, 0) };
        if beta != 0.0 {
            return c;
        }
        // Spot-check the product itself against f64 sums.
        for (i, j) in [(0, 0), (m - 1, n - 1), (m / 2, n / 2), (m - 1, 0)] {
            let want: f64 = 1.5
                * (0..k)
                    .map(|p| f64::from(a.get(i, p)) * f64::from(b.get(p, j)))
                    .sum::<f64>();
            let got = f64::from(c[i * n + j]);
            assert!(
                (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                "({i}, {j}): {got} vs {want}"
            );
        }
        c
    }

    /// Reading B in place is a choice of speed only: for every candidate that does it (and
    /// the portable kernel, which reads any row stride too), products of one tile of rows
    /// to as many as the kernel takes, one to KC deep, with a ragged last panel and a
    /// strided B, give the same bits as packing B, and the product.
    #[test]
    fn reading_b_in_place_changes_no_bits() {
        let mut kernels: Vec<(GemmKernel, bool)> = GemmKernel::available()
            .into_iter()
            .map(|kernel| (kernel, false))
            .collect();
        kernels.push((GemmKernel::Portable, true));
        for (candidate, force) in kernels {
            for m in [1, 7, 13, 16, 40, 64] {
                let kernel = MicroKernel::of(candidate, m);
                let panels = if force { 8 } else { kernel.b_in_place_panels };
                if m.div_ceil(kernel.mr) > panels {
                    continue;
                }
                for k in [1, 17, kernel.kc] {
                    for n in [3 * kernel.nr + 5, 1000] {
                        let in_place = MicroKernel {
                            b_in_place_panels: panels,
                            ..kernel
                        };
                        let packing = MicroKernel {
                            b_in_place_panels: 0,
                            ..kernel
                        };
                        let zeros = vec![0.0f32; k * (n + 3)];
                        let b = MatRef::new(&zeros, k, n, n + 3, 1).unwrap();
                        assert!(
                            applies(&in_place, m, b),
                            "{candidate} {m}x{k}x{n}: not taken"
                        );
                        for (beta, c0) in [(0.0, f32::NAN), (0.5, 2.0)] {
                            let (x, y) = (
                                product(&in_place, (m, k, n), beta, c0),
                                product(&packing, (m, k, n), beta, c0),
                            );
                            assert!(
                                same_bits(&x, &y),
                                "{candidate} {m}x{k}x{n}, beta {beta}: the bits changed"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Split between two threads, a product read in place takes its A from the packed A the
    /// threads share: the same bits as on one thread, and the product.
    #[test]
    fn two_threads_read_b_in_place_from_a_shared_packed_a() {
        for m in [13, 60] {
            two_threads_match_one(m);
        }
    }

    /// [`two_threads_read_b_in_place_from_a_shared_packed_a`] for `m` rows.
    fn two_threads_match_one(m: usize) {
        let (k, n) = (100, 4000);
        assert!(2 * m * k * n >= crate::gemm::PARALLEL_MIN_FLOPS);
        let (a, b) = operands(m, k, n);
        let (a, b) = (
            MatRef::row_major(&a, m, k).unwrap(),
            MatRef::row_major(&b, k, n).unwrap(),
        );
        for candidate in GemmKernel::available() {
            let kernel = MicroKernel::of(candidate, m);
            if !applies(&kernel, m, b) {
                continue;
            }
            let on = |threads: usize| {
                let mut c = vec![f32::NAN; m * n];
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let out = crate::gemm::MatMut::row_major(&mut c, m, n).unwrap();
                    crate::gemm::gemm_with(candidate, 1.0, a, b, 0.0, out).unwrap();
                });
                c
            };
            let (one, two) = (on(1), on(2));
            assert!(
                same_bits(&one, &two),
                "{candidate}: two threads changed the bits"
            );
            for (i, j) in [(0, 0), (m - 1, n - 1), (6, 2047), (12, 2048)] {
                let want: f64 = (0..k)
                    .map(|p| f64::from(a.get(i, p)) * f64::from(b.get(p, j)))
                    .sum();
                let got = f64::from(two[i * n + j]);
                assert!(
                    (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                    "{candidate} ({i}, {j}): {got} vs {want}"
                );
            }
        }
    }

    /// A B whose rows share an alignment off the cache line starts with a narrow packed
    /// panel up to the next line, so every full panel starts on one; rows of differing
    /// alignment start none.
    #[test]
    fn the_first_panel_reaches_a_cache_line() {
        let data = vec![0.0f32; 64 * 40];
        for skip in 0..16 {
            let rows = &data[skip..];
            let lined = MatRef::new(rows, 4, 500, 512, 1).unwrap();
            let lead = lead_columns(lined, 48);
            assert!(lead < 16, "skip {skip}: lead {lead}");
            let address = rows.as_ptr() as usize + 4 * lead;
            assert_eq!(address % 64, 0, "skip {skip}: lead {lead}");
            let ragged = MatRef::new(rows, 4, 500, 509, 1).unwrap();
            assert_eq!(lead_columns(ragged, 48), 0, "skip {skip}: rows 509 apart");
            let one_row = MatRef::new(rows, 1, 500, 509, 1).unwrap();
            assert_eq!(lead_columns(one_row, 48), lead, "skip {skip}: one row");
            assert_eq!(lead_columns(lined, 8), if lead < 8 { lead } else { 0 });
        }
    }

    /// The narrow first panel changes no bits either: B at each alignment against packing,
    /// for every candidate that reads B in place.
    #[test]
    fn a_b_off_the_cache_line_gives_the_bits_of_packing() {
        let (m, n) = (13, 1000);
        for candidate in GemmKernel::available() {
            let kernel = MicroKernel::of(candidate, m);
            if kernel.b_in_place_panels == 0 {
                continue;
            }
            let packing = MicroKernel {
                b_in_place_panels: 0,
                ..kernel
            };
            for k in [1, 17, kernel.kc] {
                for skip in [0, 1, 5, 12, 15] {
                    for (beta, c0) in [(0.0, f32::NAN), (0.5, 2.0)] {
                        let x = product_at(&kernel, (m, k, n), (1008, skip), beta, c0);
                        let y = product_at(&packing, (m, k, n), (1008, skip), beta, c0);
                        assert!(
                            same_bits(&x, &y),
                            "{candidate} k {k} skip {skip} beta {beta}: the bits changed"
                        );
                    }
                }
            }
        }
    }

    /// A B that streams from memory is prefetched a group of panels ahead, a run of
    /// [`PREFETCH_RUN_COLUMNS`] per row; one that fits L2 a panel ahead.
    #[test]
    fn only_a_b_larger_than_l2_is_prefetched_in_groups() {
        let l2 = 2 << 20;
        assert_eq!(prefetch_group(144, 65536, 48, l2), 8);
        assert_eq!(prefetch_group(144, 65536, 16, l2), 24);
        assert_eq!(prefetch_group(144, 65536, 32, l2), 12);
        assert_eq!(prefetch_group(144, 3136, 48, l2), 1, "1.7 MiB fits");
        assert_eq!(prefetch_group(144, 65536, 512, l2), 1, "wider than a run");
    }

    /// Prefetching in groups, after a narrow lead panel or without one, reads every panel
    /// once and in place: the bits of packing B, for a B far larger than any core's L2.
    #[test]
    fn a_streamed_b_gives_the_bits_of_packing() {
        let (k, n) = (100, 40_000);
        for candidate in GemmKernel::available() {
            for m in [13, 60] {
                let kernel = MicroKernel::of(candidate, m);
                let b = MatRef::new(&[0.0; 1], 1, 1, 1, 1).unwrap();
                if !applies(&kernel, m, b) {
                    continue;
                }
                assert!(prefetch_group(k, n, kernel.nr, 4 << 20) > 1);
                let packing = MicroKernel {
                    b_in_place_panels: 0,
                    ..kernel
                };
                for skip in [0, 5] {
                    let x = product_at(&kernel, (m, k, n), (n, skip), 0.0, f32::NAN);
                    let y = product_at(&packing, (m, k, n), (n, skip), 0.0, f32::NAN);
                    assert!(
                        same_bits(&x, &y),
                        "{candidate} {m} rows, skip {skip}: the bits changed"
                    );
                }
            }
        }
    }

    /// Only products one block deep with no more tiles of rows than the kernel takes and
    /// unit-stride rows of B are taken, and none where the kernel takes none.
    #[test]
    fn only_shallow_products_of_few_rows_are_taken() {
        let kernel = MicroKernel {
            b_in_place_panels: 2,
            ..MicroKernel::of(GemmKernel::Portable, 16)
        };
        let (mr, kc) = (kernel.mr, kernel.kc);
        let data = vec![0.0f32; (kc + 1) * 64];
        let b = |k: usize| MatRef::row_major(&data[..k * 64], k, 64).unwrap();
        assert!(applies(&kernel, 2 * mr, b(kc)));
        assert!(applies(&kernel, 1, b(1)));
        assert!(!applies(&kernel, 2 * mr + 1, b(kc)), "three tiles of rows");
        assert!(!applies(&kernel, mr, b(kc + 1)), "two depth blocks");
        let small_l2 = MicroKernel { mc: mr, ..kernel };
        assert!(!applies(&small_l2, 2 * mr, b(kc)), "two blocks of rows");
        let column_major = MatRef::new(&data[..kc * 64], kc, 64, 1, kc).unwrap();
        assert!(!applies(&kernel, mr, column_major), "strided columns");
        let refusing = MicroKernel {
            b_in_place_panels: 0,
            ..kernel
        };
        assert!(
            !applies(&refusing, mr, b(kc)),
            "without the kernel's consent"
        );
    }
}
