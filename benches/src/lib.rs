//! Criterion benchmarks across Ventral's crates live in `benches/`; this library holds the
//! inputs they share and the direct-kernel LeNet-5 step the autograd bench compares against.
#![forbid(unsafe_code)]

pub mod lenet_step;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::peer::matrixmultiply_threads;

/// `len` values uniform in `[-1, 1)` from a fixed seed, so every run measures the same data.
pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A rayon pool with as many threads as one matrixmultiply call can use in this process
/// ([`matrixmultiply_threads`]: `MATMUL_NUM_THREADS` or the physical cores, then 1, 2 or 4),
/// so Ventral and its peer are measured on the same number of threads, and that number.
/// Prints it, and a note when it is below rayon's default (set `MATMUL_NUM_THREADS` and
/// `RAYON_NUM_THREADS` together to choose it).
pub fn peer_pool() -> (rayon::ThreadPool, usize) {
    let (peer, ours) = (matrixmultiply_threads(), rayon::current_num_threads());
    if peer == ours {
        eprintln!("ventral and matrixmultiply both on {peer} thread(s)");
    } else {
        eprintln!(
            "matrixmultiply runs on {peer} thread(s) (MATMUL_NUM_THREADS, at most 4, as 1, 2 or 4); \
             Ventral is measured on {peer} too instead of {ours}"
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(peer)
        .build()
        .expect("a thread pool");
    (pool, peer)
}
