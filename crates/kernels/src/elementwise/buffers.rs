//! Fresh f32 buffers made by every thread. `vec![0.0; n]` clears reused memory on the calling
//! thread alone, with the other threads idle: for a training step's activations (megabytes
//! each) that serial pass was a few percent of a 2-thread step.

use rayon::prelude::*;

use super::dispatch::go_parallel;

/// `n` zeros; large buffers are cleared by all threads of the current pool.
pub fn zeros(n: usize) -> Vec<f32> {
    if !go_parallel(n) {
        return vec![0.0; n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0.0f32, n));
    v
}

/// A copy of `x`; large ones are copied by all threads of the current pool.
pub fn copied(x: &[f32]) -> Vec<f32> {
    if !go_parallel(x.len()) {
        return x.to_vec();
    }
    let mut v = Vec::with_capacity(x.len());
    v.par_extend(x.par_iter().copied());
    v
}
