//! Criterion benchmarks across Ventral's crates live in `benches/`; this library holds the
//! inputs they share and the direct-kernel LeNet-5 step the autograd bench compares against.
#![forbid(unsafe_code)]

pub mod lenet_step;

use rand::{RngExt, SeedableRng, rngs::StdRng};

/// `len` values uniform in `[-1, 1)` from a fixed seed, so every run measures the same data.
pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}
