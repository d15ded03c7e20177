//! Peers that benchmarks measure Ventral against, behind the same safe views.
//!
//! Only compiled with the `bench-tools` feature. Ventral's kernels never call these.

pub mod conv;

use crate::error::{KernelError, Result};
use crate::gemm::{MatMut, MatRef};

/// The most threads one `matrixmultiply::sgemm` call of this process can use.
///
/// matrixmultiply 0.3 (feature `threading`, `src/threading.rs`) reads `MATMUL_NUM_THREADS`
/// once, at its first call: a number is taken as is, an empty or unset variable means the
/// physical core count (`num_cpus::get_physical`), anything else means 1; the result is then
/// clamped to 1..=4 (`MAX_THREADS`). Each call splits at most two loops in two
/// (`LoopThreadConfig`), so it runs on 1, 2 or 4 threads: 3 configured threads give 2. Small
/// products use fewer still (fewer than 2 threads per 2^14 elements of A and B).
///
/// This reads the variable now: it describes the calls only if the variable did not change
/// since the first `sgemm` of the process.
pub fn matrixmultiply_threads() -> usize {
    let configured = match std::env::var("MATMUL_NUM_THREADS") {
        Ok(s) if !s.is_empty() => s.parse::<usize>().unwrap_or(1),
        _ => num_cpus::get_physical(),
    };
    match configured.clamp(1, 4) {
        4 => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

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
