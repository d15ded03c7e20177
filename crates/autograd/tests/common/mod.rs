//! Helpers shared by the gradient-check tests: input generators and a proptest-friendly check.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ventral_autograd::{GradcheckOptions, Result, Shape, Tensor, gradcheck};

/// Uniform values in `[lo, hi)` from `seed`.
pub fn uniform(shape: impl Into<Shape>, lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, seed).unwrap()
}

/// Pairwise-distinct values on a grid `spacing` apart, offset by `spacing / 2` from 0 and
/// shuffled by `seed`: no element sits within `spacing / 2` of 0 or of another element, so
/// kinks (relu at 0, ties in max) stay far beyond the checker's `2h = 0.016`.
pub fn distinct(shape: impl Into<Shape>, spacing: f32, seed: u64) -> Tensor {
    let shape = shape.into();
    let keys = Tensor::rand_uniform(shape.clone(), 0.0, 1.0, seed)
        .unwrap()
        .to_vec();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let half = keys.len() as f32 / 2.0;
    let mut values = vec![0.0; keys.len()];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = ((rank as f32 - half).floor() + 0.5) * spacing;
    }
    Tensor::from_vec(values, shape).unwrap()
}

/// Runs [`gradcheck`] with the default options and fails the case with its report.
pub fn check<F>(f: F, inputs: &[Tensor]) -> std::result::Result<(), TestCaseError>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let report = gradcheck(f, inputs, &GradcheckOptions::default())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(report.passed(), "{report}");
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
