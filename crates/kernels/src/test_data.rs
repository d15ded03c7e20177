//! Data and comparisons the crate's unit tests share.

use crate::gemm::MatRef;

/// `len` values `((i * step) % modulus - modulus / 2) / scale`: a fixed, sign-mixed pattern
/// with no period short enough to hide a misplaced element, exact in f32.
pub(crate) fn pattern(len: usize, step: usize, modulus: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step % modulus) as f32 - (modulus / 2) as f32) / scale)
        .collect()
}

/// A row-major `m x k` A and `k x n` B of [`pattern`] values, for products.
pub(crate) fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    (pattern(m * k, 37, 101, 64.0), pattern(k * n, 53, 97, 32.0))
}

/// Runs `test` on row-major views of [`operands`]`(m, k, n)`.
pub(crate) fn with_operands(
    m: usize,
    k: usize,
    n: usize,
    test: impl FnOnce(MatRef<'_>, MatRef<'_>),
) {
    let (a, b) = operands(m, k, n);
    let a = MatRef::row_major(&a, m, k).expect("m x k floats");
    let b = MatRef::row_major(&b, k, n).expect("k x n floats");
    test(a, b);
}

/// Whether `x` and `y` hold the same floats bit for bit (NaN payloads and signed zeros
/// included), element by element.
pub(crate) fn same_bits(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
}
