//! Peers that benchmarks measure Ventral against, behind the same safe views.
//!
//! Only compiled with the `peer` feature. Ventral's kernels never call these.

use crate::error::{KernelError, Result};
use crate::gemm::{MatMut, MatRef};

/// `C = alpha * A * B + beta * C` computed by `matrixmultiply::sgemm`.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if the shapes do not agree.
pub fn matrixmultiply_gemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
) -> Result<()> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if b.rows() != k || c.rows() != m || c.cols() != n {
        return Err(KernelError::ShapeMismatch {
            op: "matrixmultiply_gemm",
            detail: format!(
                "A [{m}, {k}] times B [{}, {n}] into C [{}, {}]",
                b.rows(),
                c.rows(),
                c.cols()
            ),
        });
    }
    let stride = |s: usize| isize::try_from(s).expect("a validated view's stride fits in isize");
    let (crs, ccs) = (stride(c.row_stride()), stride(c.col_stride()));
    let c_ptr = c.data_mut().as_mut_ptr();
    // SAFETY: all three views were validated when built, so every (i, j) offset computed from
    // these strides lies inside its slice, and C's elements never alias; `c` is borrowed
    // mutably for the whole call.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data().as_ptr(),
            stride(a.row_stride()),
            stride(a.col_stride()),
            b.data().as_ptr(),
            stride(b.row_stride()),
            stride(b.col_stride()),
            beta,
            c_ptr,
            crs,
            ccs,
        );
    }
    Ok(())
}
