//! Packing lowered rows (see `lowering.rs`) straight into the micro-panels of a GEMM's B
//! operand, a buffer-sized chunk at a time, without materialising the lowered matrix: the
//! forward product's B (rows are lowered rows) and the weight gradient's (transposed).

use crate::gemm::transpose::{self, BLOCK, transpose16};

thread_local! {
    static ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's buffer of at least `len` floats (not cleared between uses).
fn with_rows<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    ROWS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Positions lowered at a time into a buffer by the packers below (rounded down to a
/// multiple of the micro-panel width), small enough (8 KiB) to stay in L1 next to the panel
/// being written.
pub(crate) const ROW_CHUNK: usize = 2048;

/// Packs `kc` lowered rows of `nc` positions as `ceil(nc / nr)` micro-panels of `kc x nr`
/// floats, `p`-major, columns past `nc` zero: the B operand of the forward product, packed
/// without materialising the lowered matrix. `lower(p, j0, row)` writes lowered row `p`
/// (of the block) for positions `j0..j0 + row.len()` (of the block).
pub(crate) fn pack_lowered(
    nr: usize,
    kc: usize,
    nc: usize,
    out: &mut [f32],
    lower: impl FnMut(usize, usize, &mut [f32]),
) {
    match nr {
        48 => pack_lowered_nr::<48>(kc, nc, out, lower),
        32 => pack_lowered_nr::<32>(kc, nc, out, lower),
        24 => pack_lowered_nr::<24>(kc, nc, out, lower),
        16 => pack_lowered_nr::<16>(kc, nc, out, lower),
        8 => pack_lowered_nr::<8>(kc, nc, out, lower),
        _ => unreachable!("micro-panels are 8, 16, 24, 32 or 48 wide"),
    }
}

fn pack_lowered_nr<const NR: usize>(
    kc: usize,
    nc: usize,
    out: &mut [f32],
    mut lower: impl FnMut(usize, usize, &mut [f32]),
) {
    // Chunks start on panel edges.
    let chunk = ROW_CHUNK / NR * NR;
    with_rows(nc.min(chunk), |tmp| {
        for p in 0..kc {
            for j0 in (0..nc).step_by(chunk) {
                let len = chunk.min(nc - j0);
                let row = &mut tmp[..len];
                lower(p, j0, row);
                // Step p of every panel, a whole panel (kc * NR floats) apart.
                let first = (j0 / NR * kc + p) * NR;
                let pieces = row.chunks_exact(NR);
                let tail = pieces.remainder();
                let full = len / NR;
                for (dst, piece) in out[first..].chunks_mut(kc * NR).zip(pieces) {
                    dst[..NR].copy_from_slice(piece);
                }
                if !tail.is_empty() {
                    let dst = &mut out[first + full * kc * NR..][..NR];
                    dst[..tail.len()].copy_from_slice(tail);
                    dst[tail.len()..].fill(0.0);
                }
            }
        }
    });
}

/// Positions up to which [`pack_lowered_t`] lowers a panel's rows side by side (in a
/// per-thread buffer of up to 32 KiB) and transposes them in registers.
const TRANSPOSED_MAX: usize = 256;

/// Packs the transpose of a block of lowered rows: B rows are `kc` output positions, B
/// columns are `nc` lowered rows, written as `ceil(nc / nr)` micro-panels of `kc x nr` floats,
/// `p`-major, columns past `nc` zero: the B operand of the weight gradient. `lower(j, row)`
/// writes lowered row `j` (of the block) for the block's `kc` positions; `kc` is at most
/// [`ROW_CHUNK`].
pub(crate) fn pack_lowered_t(
    nr: usize,
    nc: usize,
    kc: usize,
    out: &mut [f32],
    lower: impl FnMut(usize, &mut [f32]),
) {
    assert!(kc <= ROW_CHUNK, "pack_lowered_t: {kc} positions at once");
    match nr {
        48 => pack_lowered_t_nr::<48>(nc, kc, out, lower),
        32 => pack_lowered_t_nr::<32>(nc, kc, out, lower),
        24 => pack_lowered_t_nr::<24>(nc, kc, out, lower),
        16 => pack_lowered_t_nr::<16>(nc, kc, out, lower),
        8 => pack_lowered_t_nr::<8>(nc, kc, out, lower),
        _ => unreachable!("micro-panels are 8, 16, 24, 32 or 48 wide"),
    }
}

fn pack_lowered_t_nr<const NR: usize>(
    nc: usize,
    kc: usize,
    out: &mut [f32],
    mut lower: impl FnMut(usize, &mut [f32]),
) {
    if NR.is_multiple_of(BLOCK) && (BLOCK..=TRANSPOSED_MAX).contains(&kc) && transpose::is_fast() {
        // Lower a panel's rows side by side, then transpose them into it in registers, 16
        // rows (panel columns) at a time.
        with_rows(NR * kc, |rows| {
            transpose_panels::<NR>(nc, kc, out, rows, &mut lower)
        });
        return;
    }
    let mut tmp = [0.0f32; ROW_CHUNK];
    let row = &mut tmp[..kc];
    for (panel, dst) in out
        .chunks_exact_mut(kc * NR)
        .take(nc.div_ceil(NR))
        .enumerate()
    {
        for jj in 0..NR {
            let j = panel * NR + jj;
            if j >= nc {
                for p in 0..kc {
                    dst[p * NR + jj] = 0.0;
                }
                continue;
            }
            lower(j, row);
            // Column jj of the panel: every NR-th float from jj.
            for (p, &v) in row.iter().enumerate() {
                dst[p * NR + jj] = v;
            }
        }
    }
}

/// The fast path of [`pack_lowered_t_nr`]: `rows` holds `NR * kc` floats of scratch.
fn transpose_panels<const NR: usize>(
    nc: usize,
    kc: usize,
    out: &mut [f32],
    rows: &mut [f32],
    lower: &mut impl FnMut(usize, &mut [f32]),
) {
    let full = kc / BLOCK * BLOCK;
    for (panel, dst) in out
        .chunks_exact_mut(kc * NR)
        .take(nc.div_ceil(NR))
        .enumerate()
    {
        for (jj, row) in rows.chunks_exact_mut(kc).take(NR).enumerate() {
            let j = panel * NR + jj;
            if j < nc {
                lower(j, row);
            } else {
                row.fill(0.0);
            }
        }
        for p0 in (0..full).step_by(BLOCK) {
            for h in (0..NR).step_by(BLOCK) {
                transpose16(&rows[h * kc + p0..], kc, &mut dst[p0 * NR + h..], NR);
            }
        }
        for p in full..kc {
            for jj in 0..NR {
                dst[p * NR + jj] = rows[jj * kc + p];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowered value `(p, j)` of the packing tests: distinct for every row and position.
    fn lowered(p: usize, j: usize) -> f32 {
        (p * 10_007 + j) as f32
    }

    /// Checks that `out` holds `nc` columns of `kc` rows as `nr`-wide micro-panels,
    /// `p`-major, with `want(p, j)` at row `p`, column `j`, and zeros past `nc`.
    fn check_panels(
        out: &[f32],
        nr: usize,
        kc: usize,
        nc: usize,
        want: impl Fn(usize, usize) -> f32,
    ) {
        for j in 0..nc.div_ceil(nr) * nr {
            for p in 0..kc {
                let got = out[(j / nr * kc + p) * nr + j % nr];
                let want = if j < nc { want(p, j) } else { 0.0 };
                assert_eq!(got, want, "width {nr}: row {p}, column {j}");
            }
        }
    }

    #[test]
    fn packed_panels_hold_each_lowered_value_in_its_place_for_every_width() {
        // More positions than one lowered chunk (so a chunk boundary falls inside the rows for
        // every width), and a ragged last panel.
        let (kc, nc) = (3, ROW_CHUNK + 45);
        for nr in [8, 16, 24, 32] {
            let panels = nc.div_ceil(nr);
            let mut out = vec![f32::NAN; panels * kc * nr];
            pack_lowered(nr, kc, nc, &mut out, |p, j0, row| {
                for (t, v) in row.iter_mut().enumerate() {
                    *v = lowered(p, j0 + t);
                }
            });
            check_panels(&out, nr, kc, nc, lowered);
        }
    }

    #[test]
    fn transposed_panels_hold_each_lowered_value_in_its_place_for_every_width() {
        // B rows are positions, B columns lowered rows; a ragged last panel.
        let (nc, kc): (usize, usize) = (53, 37);
        for nr in [8, 16, 24, 32] {
            let panels = nc.div_ceil(nr);
            let mut out = vec![f32::NAN; panels * kc * nr];
            pack_lowered_t(nr, nc, kc, &mut out, |j, row| {
                for (p, v) in row.iter_mut().enumerate() {
                    *v = lowered(j, p);
                }
            });
            check_panels(&out, nr, kc, nc, |p, j| lowered(j, p));
        }
    }
}
