//! Helpers shared by the gradient-check tests: input generators and a proptest-friendly check.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ventral_autograd::{GradcheckOptions, Result, Shape, Tensor, distinct_values, gradcheck};

/// Uniform values in `[lo, hi)` from `seed`.
pub fn uniform(shape: impl Into<Shape>, lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, seed).unwrap()
}

/// [`distinct_values`]: pairwise-distinct values `spacing` apart, none near 0, so kinks (relu
/// at 0, ties in max) stay far beyond the checker's `2h = 0.016`.
pub fn distinct(shape: impl Into<Shape>, spacing: f32, seed: u64) -> Tensor {
    distinct_values(shape, spacing, seed).unwrap()
}

/// The deliberate error of the mutation half of [`check`]: every backward 5 % too large.
pub const MUTATION: f32 = 1.05;

/// Runs [`gradcheck`] with the default options and fails the case with its report unless
/// it passes; then runs it again with every backward [`MUTATION`] times too large and fails
/// the case unless that is caught at every input whose gradient makes it catchable
/// ([`ventral_autograd::GradcheckReport::uncaught`]).
pub fn check<F>(f: F, inputs: &[Tensor]) -> std::result::Result<(), TestCaseError>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let options = GradcheckOptions::default();
    let report = gradcheck(&f, inputs, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(report.passed(), "{report}");
    let mutation = options.with_backward_scale(MUTATION);
    let mutated =
        gradcheck(&f, inputs, &mutation).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let missed = report.uncaught(&mutated, &mutation);
    prop_assert!(
        missed.is_empty(),
        "a backward {MUTATION} times too large passed at inputs {missed:?}:\n{mutated}"
    );
    Ok(())
}

/// A small shape: rank 1..=3, dimensions 1..=4.
pub fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=3)
}

/// A shape and a second shape that broadcasts with it: each dimension of the second is
/// either the first's or 1, and leading dimensions may be missing (either side may be the
/// one that is broadcast).
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        small_shape(),
        prop::collection::vec(any::<bool>(), 3),
        0usize..=2,
        any::<bool>(),
    )
        .prop_map(|(full, ones, drop, swap)| {
            let mut other: Vec<usize> = full
                .iter()
                .zip(&ones)
                .map(|(&d, &one)| if one { 1 } else { d })
                .collect();
            let drop = drop.min(other.len() - 1);
            other.drain(..drop);
            if swap { (other, full) } else { (full, other) }
        })
}

/// The config of every property test: few cases, so the whole crate stays fast.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
