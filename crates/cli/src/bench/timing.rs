//! Timing helpers: interleaved medians, so a peer and Ventral see the same machine state.

use std::time::{Duration, Instant};

/// Shortest time one sample should take; shorter calls are repeated within a sample.
pub const MIN_SAMPLE: Duration = Duration::from_millis(20);

/// Median seconds per call of `ours` and `peer`, measured alternately over `reps` samples
/// after one warm-up sample each.
pub fn interleaved_medians(
    reps: usize,
    mut ours: impl FnMut(),
    mut peer: impl FnMut(),
) -> (f64, f64) {
    let medians = round_robin_medians(reps, &mut [&mut ours, &mut peer]);
    (medians[0], medians[1])
}

/// Median seconds per call of each of `runs`, measured in turn (one sample of each, then
/// the next round) over `reps` rounds after one warm-up sample each, so every one sees the
/// same machine state.
pub fn round_robin_medians(reps: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let calls: Vec<usize> = runs.iter_mut().map(|f| calls_per_sample(f)).collect();
    let mut samples = vec![Vec::with_capacity(reps); runs.len()];
    for _ in 0..reps {
        for ((f, &calls), samples) in runs.iter_mut().zip(&calls).zip(&mut samples) {
            samples.push(sample(f, calls));
        }
    }
    samples.iter_mut().map(|s| median(s)).collect()
}

/// Median seconds per call of `f` over `reps` samples after a warm-up.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    let calls = calls_per_sample(&mut f);
    let mut samples: Vec<f64> = (0..reps).map(|_| sample(&mut f, calls)).collect();
    median(&mut samples)
}

/// Warms `f` up and returns how many calls make one sample of at least [`MIN_SAMPLE`].
fn calls_per_sample(f: &mut dyn FnMut()) -> usize {
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(100));
    (MIN_SAMPLE.as_secs_f64() / once.as_secs_f64())
        .ceil()
        .clamp(1.0, 1e6) as usize
}

fn sample(f: &mut dyn FnMut(), calls: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed().as_secs_f64() / calls as f64
}

/// The median of `samples` (which it sorts).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
