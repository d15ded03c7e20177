//! 16 x 16 block transposes for packing operands whose packed direction is strided in memory
//! (a row-major A, a column-major B, the transposed lowering of a convolution's weight
//! gradient): in AVX-512 registers when the CPU has them, element by element otherwise.
//! Packing only moves values, so either way the packed bits are the same.

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
}
