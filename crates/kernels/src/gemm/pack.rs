//! Packing: copying blocks of A and B into the micro-panel layouts the micro-kernels stream.
//!
//! Packed layouts (see `microkernel.rs`): A as MR-row micro-panels, each `kc x MR` stored
//! `p`-major; B as NR-column micro-panels, each `kc x NR` stored `p`-major. Rows or columns
//! beyond the block are zero so edge tiles can run the full kernel.

use super::transpose::{self, BLOCK, transpose_rows, transpose16};
use super::view::MatRef;

/// Packs the whole `a` block (`mc x kc`) into `ceil(mc / mr)` micro-panels in `out`.
pub(crate) fn pack_a<const MR: usize>(a: MatRef<'_>, out: &mut [f32]) {
    let mr = MR;
    let (mc, kc) = (a.rows(), a.cols());
    let (rs, cs) = (a.row_stride(), a.col_stride());
    let data = a.data();
    for (panel, dst) in out
        .chunks_exact_mut(kc * mr)
        .take(mc.div_ceil(mr))
        .enumerate()
    {
        let i0 = panel * mr;
        let rows = mr.min(mc - i0);
        if rows < mr {
            dst.fill(0.0);
        }
        if rs == 1 {
            // Column-major A (e.g. a transposed operand): each step's MR values are contiguous.
            for (p, step) in dst.chunks_exact_mut(mr).enumerate() {
                let src = i0 + p * cs;
                step[..rows].copy_from_slice(&data[src..src + rows]);
            }
        } else if cs == 1 && rows == mr && mr.is_multiple_of(8) {
            // Row-major A, full panel of 8 or 16 rows: transpose 8-row strips in registers.
            for g in (0..mr).step_by(8) {
                transpose_rows::<8>(&data[(i0 + g) * rs..], rs, kc, &mut dst[g..], mr);
            }
        } else if cs == 1 && rows == mr && mr.is_multiple_of(6) {
            // Row-major A, full panel of 6 or 12 rows: transpose 6-row strips in registers.
            for g in (0..mr).step_by(6) {
                transpose_rows::<6>(&data[(i0 + g) * rs..], rs, kc, &mut dst[g..], mr);
            }
        } else if cs == 1 {
            // Row-major A: walk each row once, writing every MR-th slot.
            for r in 0..rows {
                let src = &data[(i0 + r) * rs..(i0 + r) * rs + kc];
                for (p, &v) in src.iter().enumerate() {
                    dst[p * mr + r] = v;
                }
            }
        } else {
            for p in 0..kc {
                for r in 0..rows {
                    dst[p * mr + r] = data[(i0 + r) * rs + p * cs];
                }
            }
        }
    }
}

/// Rows of a row-major B that [`pack_b`] deals out to the panels in one sweep. Interleaved
/// in one process on an AMD EPYC Zen 3 against one row a sweep: 64x576x3136 and 16x144x65536
/// ran 1.06-1.14x as fast at 1 and 2 threads with 4 or 8 rows (the two within noise of each
/// other); 1024^3, where packing B is a small share, within noise.
const ROWS_PER_SWEEP: usize = 8;

/// Packs the whole `b` block (`kc x nc`) into `ceil(nc / nr)` micro-panels in `out`.
pub(crate) fn pack_b<const NR: usize>(b: MatRef<'_>, out: &mut [f32]) {
    let (kc, nc) = (b.rows(), b.cols());
    let (rs, cs) = (b.row_stride(), b.col_stride());
    let data = b.data();
    let panels = nc.div_ceil(NR);
    let out = &mut out[..panels * kc * NR];
    if cs == 1 && kc > 0 {
        // Row-major B: the full panels first, then the ragged one, zero-padded.
        let full = nc / NR;
        deal_rows::<NR>(
            &data[..(kc - 1) * rs + nc],
            rs,
            kc,
            &mut out[..full * kc * NR],
        );
        if full < panels {
            for p in 0..kc {
                let tail = &data[p * rs + full * NR..p * rs + nc];
                let dst = &mut out[(full * kc + p) * NR..][..NR];
                dst[..tail.len()].copy_from_slice(tail);
                dst[tail.len()..].fill(0.0);
            }
        }
        return;
    }
    for (panel, dst) in out.chunks_exact_mut(kc * NR).enumerate() {
        let j0 = panel * NR;
        let cols = NR.min(nc - j0);
        if cols < NR {
            dst.fill(0.0);
        }
        if rs == 1 {
            // Column-major B: walk each column once, writing every NR-th slot.
            for j in 0..cols {
                let src = &data[(j0 + j) * cs..(j0 + j) * cs + kc];
                for (p, &v) in src.iter().enumerate() {
                    dst[p * NR + j] = v;
                }
            }
        } else {
            for p in 0..kc {
                for j in 0..cols {
                    dst[p * NR + j] = data[p * rs + (j0 + j) * cs];
                }
            }
        }
    }
}

/// Packs the full NR-column panels of a row-major `kc`-row B (rows `rs` apart in `src`) into
/// `out`, which holds exactly those panels: the rows are read front to back,
/// [`ROWS_PER_SWEEP`] at a time, and their NR-wide pieces dealt out to the panels. Walking a
/// panel down its kc rows instead would touch kc rows that are often a power of two apart,
/// all in one cache set, for every NR floats; one row at a time touched a page of every panel
/// per row. With AVX the pieces move in 256-bit registers without bounds checks: interleaved
/// in one process on an AMD EPYC Zen 3 against the slice copies alone, products were
/// 1.02-1.05x as fast on 128x1152x784, 64x576x3136, 16x144x65536 and 64x9216x4096 at 1
/// thread (where packing B is 10-25 % of the time) and 1.01-1.03x at 2; 128x4096x4096 and
/// 1024^3 level.
fn deal_rows<const NR: usize>(src: &[f32], rs: usize, kc: usize, out: &mut [f32]) {
    if out.is_empty() {
        return;
    }
    let full = out.len() / (kc * NR);
    assert!(
        full * kc * NR == out.len() && (full == 0 || (kc - 1) * rs + full * NR <= src.len()),
        "deal_rows: {} floats of B for {kc} rows of {full} panels of {NR} at stride {rs}",
        src.len()
    );
    #[cfg(target_arch = "x86_64")]
    if NR.is_multiple_of(8) && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX was detected; the assert above covers every source piece (row p < kc,
        // floats panel * NR .. (panel + 1) * NR for panel < full) and every destination one.
        unsafe { deal_rows_avx::<NR>(src.as_ptr(), rs, kc, full, out.as_mut_ptr()) };
        return;
    }
    deal_rows_plain::<NR>(src, rs, kc, out);
}

/// [`deal_rows`] one slice copy at a time: the portable path, and the reference its AVX
/// path is tested against.
fn deal_rows_plain<const NR: usize>(src: &[f32], rs: usize, kc: usize, out: &mut [f32]) {
    let full = out.len() / (kc * NR);
    for p0 in (0..kc).step_by(ROWS_PER_SWEEP) {
        for panel in 0..full {
            for p in p0..(p0 + ROWS_PER_SWEEP).min(kc) {
                let piece = &src[p * rs + panel * NR..][..NR];
                out[(panel * kc + p) * NR..][..NR].copy_from_slice(piece);
            }
        }
    }
}

/// [`deal_rows`] with 256-bit loads and stores.
///
/// # Safety
/// The CPU must support AVX; NR must be a multiple of 8; `src` must hold `kc` rows `rs`
/// apart of at least `full * NR` floats, and `out` `full * kc * NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn deal_rows_avx<const NR: usize>(
    src: *const f32,
    rs: usize,
    kc: usize,
    full: usize,
    out: *mut f32,
) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};
    for p0 in (0..kc).step_by(ROWS_PER_SWEEP) {
        for panel in 0..full {
            for p in p0..(p0 + ROWS_PER_SWEEP).min(kc) {
                for j in (0..NR).step_by(8) {
                    // SAFETY: p < kc, panel < full and j + 8 <= NR, inside both buffers
                    // (see the function's contract).
                    unsafe {
                        let piece = _mm256_loadu_ps(src.add(p * rs + panel * NR + j));
                        _mm256_storeu_ps(out.add((panel * kc + p) * NR + j), piece);
                    }
                }
            }
        }
    }
}

/// [`pack_a`] for 16-row panels: a row-major A (each panel's steps strided in memory) is
/// transposed 16 x 16 blocks at a time in registers where the CPU can.
pub(crate) fn pack_a16(a: MatRef<'_>, out: &mut [f32]) {
    let (mc, kc) = (a.rows(), a.cols());
    let rs = a.row_stride();
    if a.col_stride() != 1 || rs == 1 || kc < BLOCK || !transpose::is_fast() {
        return pack_a::<BLOCK>(a, out);
    }
    let data = a.data();
    let full = kc / BLOCK * BLOCK;
    for (panel, dst) in out
        .chunks_exact_mut(kc * BLOCK)
        .take(mc.div_ceil(BLOCK))
        .enumerate()
    {
        let i0 = panel * BLOCK;
        if mc - i0 < BLOCK {
            pack_a::<BLOCK>(a.block(i0, 0, mc - i0, kc), dst);
            continue;
        }
        for p0 in (0..full).step_by(BLOCK) {
            transpose16(&data[i0 * rs + p0..], rs, &mut dst[p0 * BLOCK..], BLOCK);
        }
        for r in 0..BLOCK {
            for p in full..kc {
                dst[p * BLOCK + r] = data[(i0 + r) * rs + p];
            }
        }
    }
}

/// [`pack_b`] for panels a multiple of 16 columns wide: a column-major B (each panel's rows
/// strided in memory) is transposed 16 x 16 blocks at a time in registers where the CPU can.
/// Other widths, layouts and shallow blocks go to [`pack_b`]; packing only moves values, so
/// both give the same bits.
///
/// A wide panel is packed one 16-column group at a time down its whole depth, so 16 columns
/// stream at once, not the panel's 32 or 48 (often 4 KiB apart, all in one cache set). On an
/// EPYC Zen 4 (family 0x19 model 0x11), 1 thread, interleaved in one process, VGG-11
/// (CIFAR)'s dense 2x2 forward product (64x2048x2048, B transposed) on the 8 x 48 tile took
/// 6.66-6.71 ms against 7.27-7.82 with the groups side by side (16 x 16: 7.07-7.30).
pub(crate) fn pack_b_t<const NR: usize>(b: MatRef<'_>, out: &mut [f32]) {
    let (kc, nc) = (b.rows(), b.cols());
    let cs = b.col_stride();
    if !NR.is_multiple_of(BLOCK)
        || b.row_stride() != 1
        || cs == 1
        || kc < BLOCK
        || !transpose::is_fast()
    {
        return pack_b::<NR>(b, out);
    }
    let data = b.data();
    let full = kc / BLOCK * BLOCK;
    for (panel, dst) in out
        .chunks_exact_mut(kc * NR)
        .take(nc.div_ceil(NR))
        .enumerate()
    {
        let j0 = panel * NR;
        if nc - j0 < NR {
            pack_b::<NR>(b.block(0, j0, kc, nc - j0), dst);
            continue;
        }
        for h in (0..NR).step_by(BLOCK) {
            for p0 in (0..full).step_by(BLOCK) {
                transpose16(&data[(j0 + h) * cs + p0..], cs, &mut dst[p0 * NR + h..], NR);
            }
        }
        for j in 0..NR {
            for p in full..kc {
                dst[p * NR + j] = data[(j0 + j) * cs + p];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_a_interleaves_rows_and_zero_pads() {
        // A is 3x2 row-major: [[1, 2], [3, 4], [5, 6]]; with MR = 2 the panels are
        // rows {0, 1} -> [1, 3, 2, 4] and row {2} padded -> [5, 0, 6, 0].
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let a = MatRef::row_major(&data, 3, 2).unwrap();
        let mut out = vec![f32::NAN; 8];
        pack_a::<2>(a, &mut out);
        assert_eq!(out, [1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]);
        // The same matrix stored column-major packs identically.
        let data_t = [1.0, 3.0, 5.0, 2.0, 4.0, 6.0];
        let mut out_t = vec![f32::NAN; 8];
        pack_a::<2>(MatRef::col_major(&data_t, 3, 2).unwrap(), &mut out_t);
        assert_eq!(out, out_t);
    }

    #[test]
    fn transposing_packers_match_the_plain_ones() {
        // 37 x 41 values, packed as a row-major A and as a column-major B (its transpose's
        // storage), with ragged edges in both directions.
        let data: Vec<f32> = (0..37 * 41).map(|v| v as f32).collect();
        let a = MatRef::row_major(&data, 37, 41).unwrap();
        let (mut want, mut got) = (vec![f32::NAN; 48 * 41], vec![f32::NAN; 48 * 41]);
        pack_a::<16>(a, &mut want);
        pack_a16(a, &mut got);
        assert_eq!(want, got);
        let b = MatRef::col_major(&data, 41, 37).unwrap();
        pack_b::<16>(b, &mut want);
        pack_b_t::<16>(b, &mut got);
        assert_eq!(want, got);
        // 32-wide panels: two 16 x 16 transposes side by side; 37 columns leave a ragged panel.
        let (mut want, mut got) = (vec![f32::NAN; 64 * 41], vec![f32::NAN; 64 * 41]);
        pack_b::<32>(b, &mut want);
        pack_b_t::<32>(b, &mut got);
        assert_eq!(want, got);
        // 48-wide panels, the 8 x 48 tile's: 100 columns are two full panels (three
        // transposes across, one 16-column group after another) and a ragged one of 4.
        let wide: Vec<f32> = (0..41 * 100).map(|v| v as f32).collect();
        let b = MatRef::col_major(&wide, 41, 100).unwrap();
        let (mut want, mut got) = (vec![f32::NAN; 144 * 41], vec![f32::NAN; 144 * 41]);
        pack_b::<48>(b, &mut want);
        pack_b_t::<48>(b, &mut got);
        assert_eq!(want, got);
    }

    #[test]
    fn dealing_rows_with_avx_matches_the_plain_copy() {
        // Ragged depths around the sweep of 8 rows, row strides wider than the panels.
        for (kc, full, rs) in [(1, 1, 16), (7, 3, 53), (8, 2, 32), (17, 5, 85), (33, 1, 19)] {
            let src: Vec<f32> = (0..kc * rs).map(|v| v as f32).collect();
            let mut want = vec![f32::NAN; full * kc * 16];
            let mut got = vec![f32::NAN; full * kc * 16];
            deal_rows_plain::<16>(&src, rs, kc, &mut want);
            deal_rows::<16>(&src, rs, kc, &mut got);
            assert_eq!(want, got, "kc {kc}, {full} panels, stride {rs}");
            // And the plain copy is the packed layout: panel-major, then row, then column.
            for (at, &v) in want.iter().enumerate() {
                let (panel, p, j) = (at / (kc * 16), at / 16 % kc, at % 16);
                assert_eq!(v, src[p * rs + panel * 16 + j], "kc {kc}, at {at}");
            }
            // 8- and 32-wide panels take the same paths.
            let mut want = vec![f32::NAN; kc * 8];
            let mut got = vec![f32::NAN; kc * 8];
            deal_rows_plain::<8>(&src, rs, kc, &mut want);
            deal_rows::<8>(&src, rs, kc, &mut got);
            assert_eq!(want, got);
            if rs >= 32 {
                let mut want = vec![f32::NAN; kc * 32];
                let mut got = vec![f32::NAN; kc * 32];
                deal_rows_plain::<32>(&src, rs, kc, &mut want);
                deal_rows::<32>(&src, rs, kc, &mut got);
                assert_eq!(want, got);
            }
        }
    }

    #[test]
    fn pack_b_groups_columns_and_zero_pads() {
        // B is 2x3 row-major: [[1, 2, 3], [4, 5, 6]]; with NR = 2 the panels are
        // cols {0, 1} -> [1, 2, 4, 5] and col {2} padded -> [3, 0, 6, 0].
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = vec![f32::NAN; 8];
        pack_b::<2>(MatRef::row_major(&data, 2, 3).unwrap(), &mut out);
        assert_eq!(out, [1.0, 2.0, 4.0, 5.0, 3.0, 0.0, 6.0, 0.0]);
        let data_t = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let mut out_t = vec![f32::NAN; 8];
        pack_b::<2>(MatRef::col_major(&data_t, 2, 3).unwrap(), &mut out_t);
        assert_eq!(out, out_t);
    }
}
