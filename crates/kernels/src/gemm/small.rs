//! The direct path for small products, where packing would cost more than it saves.

use super::driver::RawMatMut;
use super::view::MatRef;
use crate::isa::Isa;

/// Products with every dimension at most this size skip packing.
pub(crate) const SMALL_MAX: usize = 32;

/// Whether `m x k` by `k x n` takes the direct path.
pub(crate) fn is_small(m: usize, k: usize, n: usize) -> bool {
    m <= SMALL_MAX && k <= SMALL_MAX && n <= SMALL_MAX
}

/// `C = alpha * A * B + beta * C` with a row accumulator and no packing; `n <= SMALL_MAX`.
///
/// # Safety
/// `c` must describe `a.rows() x b.cols()` writable, non-aliasing elements that no other
/// thread touches during the call; the CPU must support `isa`.
pub(crate) unsafe fn gemm_small(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: RawMatMut,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that the CPU supports the ISA (every AVX-512 CPU has AVX2
        // and FMA), and owns C.
        Isa::Avx2Fma | Isa::Avx512 => unsafe { direct_avx2(alpha, a, b, beta, c) },
        // SAFETY: the caller owns C.
        _ => unsafe { direct::<false>(alpha, a, b, beta, c) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn direct_avx2(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: RawMatMut) {
    // SAFETY: forwarded from `gemm_small`.
    unsafe { direct::<true>(alpha, a, b, beta, c) };
}

/// `x * y + z`, fused where the instruction set has FMA.
#[inline(always)]
fn madd<const FUSED: bool>(x: f32, y: f32, z: f32) -> f32 {
    if FUSED { x.mul_add(y, z) } else { x * y + z }
}

#[inline(always)]
unsafe fn direct<const FUSED: bool>(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: RawMatMut,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (ad, ars, acs) = (a.data(), a.row_stride(), a.col_stride());
    let (bd, brs, bcs) = (b.data(), b.row_stride(), b.col_stride());
    let (crs, ccs) = (c.row_stride, c.col_stride);
    let mut acc = [0.0f32; SMALL_MAX];
    let acc = &mut acc[..n];
    for i in 0..m {
        acc.fill(0.0);
        for p in 0..k {
            let aip = ad[i * ars + p * acs];
            if bcs == 1 {
                let row = &bd[p * brs..p * brs + n];
                for (s, &bv) in acc.iter_mut().zip(row) {
                    *s = madd::<FUSED>(aip, bv, *s);
                }
            } else {
                for (j, s) in acc.iter_mut().enumerate() {
                    *s = madd::<FUSED>(aip, bd[p * brs + j * bcs], *s);
                }
            }
        }
        for (j, &s) in acc.iter().enumerate() {
            // SAFETY: (i, j) lies inside C, which the caller gives this thread exclusively.
            let dst = unsafe { &mut *c.ptr.add(i * crs + j * ccs) };
            *dst = if beta == 0.0 {
                alpha * s
            } else {
                madd::<FUSED>(alpha, s, beta * *dst)
            };
        }
    }
}
