//! Helpers shared by the elementwise, reduction, softmax and dropout tests.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{RngExt, SeedableRng, rngs::StdRng};

/// A rayon pool of 1 or 2 threads, built once per test binary.
pub fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<[rayon::ThreadPool; 2]> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        [1, 2].map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool")
        })
    });
    &pools[threads - 1]
}

/// `len` uniform values in `[lo, hi)` from a seeded generator.
pub fn random_vec(len: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Bit patterns of a slice, so `assert_eq!` compares NaN and -0.0 exactly.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Relative error of `got` against `want`; exact agreement (including both NaN, or equal
/// infinities) is 0, and a nonzero result where 0 is expected is infinite.
pub fn rel_err(got: f32, want: f64) -> f64 {
    let g = f64::from(got);
    if (g.is_nan() && want.is_nan()) || g == want {
        return 0.0;
    }
    if want == 0.0 || !want.is_finite() || !g.is_finite() {
        return f64::INFINITY;
    }
    ((g - want) / want).abs()
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise, reporting the first failure.
pub fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        if g.is_nan() && w.is_nan() {
            continue;
        }
        assert!(
            (g - w).abs() <= atol + rtol * w.abs() || g == w,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}
