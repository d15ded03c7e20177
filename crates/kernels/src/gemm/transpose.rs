//! Block transposes for packing operands whose packed direction is strided in memory (a
//! row-major A, a column-major B, the transposed lowering of a convolution's weight
//! gradient): 16 x 16 blocks in AVX-512 registers, and 6- and 8-row strips (the A panels of
//! the 6-, 8- and 12-row tiles) in AVX registers, when the CPU has them; element by element
//! otherwise. Packing only moves values, so either way the packed bits are the same.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Side of the transposed blocks.
pub(crate) const BLOCK: usize = 16;

/// Whether [`transpose16`] runs in registers on this CPU (checked once by the standard
/// library's feature cache).
pub(crate) fn is_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Writes the transpose of the 16 x 16 block of `src` (rows `src_stride` apart) into `dst`
/// (rows `dst_stride` apart): `dst[j * dst_stride + i] = src[i * src_stride + j]`.
///
/// # Panics
/// If either slice is too short for its 16 rows of 16.
pub(crate) fn transpose16(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    let need = |stride: usize| (BLOCK - 1) * stride + BLOCK;
    assert!(
        src.len() >= need(src_stride) && dst.len() >= need(dst_stride),
        "transpose16: slices too short"
    );
    #[cfg(target_arch = "x86_64")]
    if is_fast() {
        // SAFETY: AVX-512F was detected; both slices hold 16 rows of 16 at their strides
        // (asserted above), which is all the function reads and writes.
        unsafe { transpose16_avx512(src.as_ptr(), src_stride, dst.as_mut_ptr(), dst_stride) };
        return;
    }
    for i in 0..BLOCK {
        for j in 0..BLOCK {
            dst[j * dst_stride + i] = src[i * src_stride + j];
        }
    }
}

/// The in-register transpose: four rounds of shuffles, each interleaving pairs of rows at
/// twice the granularity of the last (1, 2, 4 and 8 floats).
///
/// # Safety
/// The CPU must support AVX-512F; `src` and `dst` must point at 16 readable (writable) rows
/// of 16 floats at their strides.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16_avx512(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    let mut r = [_mm512_setzero_ps(); BLOCK];
    for (i, row) in r.iter_mut().enumerate() {
        // SAFETY: row i of the source block, inside the caller's 16 rows.
        *row = unsafe { _mm512_loadu_ps(src.add(i * src_stride)) };
    }
    let mut t = [_mm512_setzero_ps(); BLOCK];
    // Round 1: interleave single floats of row pairs (0, 1), (2, 3), ...
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Round 2: pairs of floats, within each group of four rows.
    for q in 0..4 {
        let b = 4 * q;
        r[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
        r[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
        r[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
        r[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
    }
    // Round 3: 128-bit lanes, within each half of the rows.
    for h in 0..2 {
        let b = 8 * h;
        for i in 0..4 {
            t[b + i] = _mm512_shuffle_f32x4::<0x88>(r[b + i], r[b + 4 + i]);
            t[b + 4 + i] = _mm512_shuffle_f32x4::<0xDD>(r[b + i], r[b + 4 + i]);
        }
    }
    // Round 4: 256-bit halves, across the two halves of the rows.
    for i in 0..8 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
        r[8 + i] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[8 + i]);
    }
    for (j, row) in r.iter().enumerate() {
        // SAFETY: row j of the destination block, inside the caller's 16 rows.
        unsafe { _mm512_storeu_ps(dst.add(j * dst_stride), *row) };
    }
}

/// Writes the transpose of a strip of `ROWS` (6 or 8) rows of `cols` floats of `src` (rows
/// `src_stride` apart) into `dst`, whose rows are `dst_stride` apart: `dst[p * dst_stride + r]
/// = src[r * src_stride + p]` for `r < ROWS`, `p < cols`. This is the packing of one strip of
/// a 6-, 8- or 12-row A panel (`dst_stride` = the tile's rows). Eight columns at a time in
/// AVX registers where the CPU has AVX2; on an AMD EPYC Zen 3 the element-by-element loop
/// took about 8 % of a 1024^3 product.
///
/// # Panics
/// If `ROWS` is not 6 or 8, `dst_stride < ROWS`, or either slice is too short.
pub(crate) fn transpose_rows<const ROWS: usize>(
    src: &[f32],
    src_stride: usize,
    cols: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    assert!(
        ROWS == 6 || ROWS == 8,
        "transpose_rows: strips of 6 or 8 rows"
    );
    if cols == 0 {
        return;
    }
    assert!(
        dst_stride >= ROWS
            && src.len() >= (ROWS - 1) * src_stride + cols
            && dst.len() >= (cols - 1) * dst_stride + ROWS,
        "transpose_rows: slices too short"
    );
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        done = cols / 8 * 8;
        let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: AVX2 was detected; the asserts above cover ROWS source rows of `done <=
        // cols` floats and `done` destination rows of ROWS, all either function touches.
        unsafe {
            if ROWS == 6 {
                transpose_rows6_avx(src, src_stride, done, dst, dst_stride)
            } else {
                transpose_rows8_avx(src, src_stride, done, dst, dst_stride)
            }
        };
    }
    for p in done..cols {
        for r in 0..ROWS {
            dst[p * dst_stride + r] = src[r * src_stride + p];
        }
    }
}

/// [`transpose_rows`] of 8 rows for a multiple of 8 columns, an 8 x 8 block at a time: pairs
/// of rows interleave, then quads, then the two 128-bit halves swap into columns.
///
/// # Safety
/// The CPU must support AVX2; `src` must hold 8 rows of `cols` floats at `src_stride` and
/// `dst` `cols` rows of 8 at `dst_stride`; `cols` must be a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_rows8_avx(
    src: *const f32,
    src_stride: usize,
    cols: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    for p0 in (0..cols).step_by(8) {
        if p0 % 16 == 0 {
            // The next strip's line at these columns (a hint; never faults).
            for i in 8..16 {
                let line = src.wrapping_add(i * src_stride + p0);
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            }
        }
        // SAFETY: 8 floats of each of the 8 rows, inside the caller's strip.
        let r: [__m256; 8] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * src_stride + p0)) });
        // t[2h] = r[2h][0] r[2h+1][0] r[2h][1] r[2h+1][1] | the same of columns 4 and 5;
        // t[2h + 1] the same of columns 2, 3 | 6, 7.
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (even, odd) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(even, odd)
            } else {
                _mm256_unpackhi_ps(even, odd)
            }
        });
        // quads[4q + j] holds rows 4q..4q + 4 of column j (low half) and j + 4 (high half).
        let quads: [__m256; 8] = std::array::from_fn(|i| {
            let (q, j) = (i / 4, i % 4);
            let (x, y) = (t[4 * q + j / 2], t[4 * q + 2 + j / 2]);
            if j % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(x, y)
            } else {
                _mm256_shuffle_ps::<0xEE>(x, y)
            }
        });
        for j in 0..4 {
            let low = _mm256_permute2f128_ps::<0x20>(quads[j], quads[4 + j]);
            let high = _mm256_permute2f128_ps::<0x31>(quads[j], quads[4 + j]);
            // SAFETY: rows p0 + j and p0 + j + 4 of the destination hold 8 floats each.
            unsafe {
                _mm256_storeu_ps(dst.add((p0 + j) * dst_stride), low);
                _mm256_storeu_ps(dst.add((p0 + j + 4) * dst_stride), high);
            }
        }
    }
}

/// [`transpose_rows`] of 6 rows for a multiple of 8 columns, 8 at a time: the 6 rows interleave in
/// two rounds of shuffles into four-float groups (rows 0-3) and pairs (rows 4-5) per column.
///
/// # Safety
/// The CPU must support AVX2; `src` must hold 6 rows of `cols` floats at `src_stride` and
/// `dst` `cols` rows of 6 at `dst_stride`; `cols` must be a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_rows6_avx(
    src: *const f32,
    src_stride: usize,
    cols: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    for p0 in (0..cols).step_by(8) {
        // SAFETY: 8 floats of each of the 6 rows, inside the caller's strip.
        let r: [__m256; 6] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * src_stride + p0)) });
        // t[0] = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], and so on.
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
        ];
        // quads[j] holds rows 0-3 of column j (low half) and of column j + 4 (high half).
        let quads = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        ];
        // Rows 4-5 of columns (0, 1 | 4, 5) are t[4]'s pairs, of (2, 3 | 6, 7) t[5]'s.
        let pairs = [
            _mm256_castps256_ps128(t[4]),
            _mm256_castps256_ps128(t[5]),
            _mm256_extractf128_ps::<1>(t[4]),
            _mm256_extractf128_ps::<1>(t[5]),
        ];
        for j in 0..8 {
            let quad = if j < 4 {
                _mm256_castps256_ps128(quads[j])
            } else {
                _mm256_extractf128_ps::<1>(quads[j - 4])
            };
            let pair = pairs[(j / 4) * 2 + (j % 4) / 2];
            // SAFETY: row p0 + j of the destination holds 6 floats: 4 here, 2 just after.
            unsafe {
                let out = dst.add((p0 + j) * dst_stride);
                _mm_storeu_ps(out, quad);
                if j % 2 == 0 {
                    _mm_store_sd(out.add(4) as *mut f64, _mm_castps_pd(pair));
                } else {
                    _mm_storeh_pd(out.add(4) as *mut f64, _mm_castps_pd(pair));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_a_block_at_any_strides() {
        // src[i][j] = 100 i + j at row stride 19; dst at row stride 17 must hold 100 j + i.
        let src: Vec<f32> = (0..15 * 19 + 16)
            .map(|e| (100 * (e / 19) + e % 19) as f32)
            .collect();
        let mut dst = vec![f32::NAN; 15 * 17 + 16];
        transpose16(&src, 19, &mut dst, 17);
        for j in 0..16 {
            for i in 0..16 {
                assert_eq!(dst[j * 17 + i], (100 * i + j) as f32, "({j}, {i})");
            }
        }
    }

    #[test]
    fn transposes_six_and_eight_row_strips_of_any_width() {
        check_strips::<6>();
        check_strips::<8>();
    }

    /// src[i][j] = 100 i + j at row stride 43; dst rows of ROWS at stride 12 (a 12-row
    /// panel's first strip), with widths on both sides of the 8-column blocks.
    fn check_strips<const ROWS: usize>() {
        for cols in [1, 7, 8, 17, 40] {
            let src: Vec<f32> = (0..(ROWS - 1) * 43 + cols)
                .map(|e| (100 * (e / 43) + e % 43) as f32)
                .collect();
            let mut dst = vec![f32::NAN; (cols - 1) * 12 + ROWS];
            transpose_rows::<ROWS>(&src, 43, cols, &mut dst, 12);
            for p in 0..cols {
                for r in 0..ROWS {
                    assert_eq!(
                        dst[p * 12 + r],
                        (100 * r + p) as f32,
                        "{ROWS} rows, cols {cols} ({p}, {r})"
                    );
                }
                if p + 1 < cols {
                    assert!(
                        dst[p * 12 + ROWS].is_nan(),
                        "wrote past row {p}'s {ROWS} floats"
                    );
                }
            }
        }
    }
}
