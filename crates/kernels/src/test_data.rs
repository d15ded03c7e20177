//! Data and comparisons the crate's unit tests share.

/// `len` values `((i * step) % modulus - modulus / 2) / scale`: a fixed, sign-mixed pattern
/// with no period short enough to hide a misplaced element, exact in f32.
pub(crate) fn pattern(len: usize, step: usize, modulus: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step % modulus) as f32 - (modulus / 2) as f32) / scale)
        .collect()
}

/// Whether `x` and `y` hold the same floats bit for bit (NaN payloads and signed zeros
/// included), element by element.
pub(crate) fn same_bits(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
}
