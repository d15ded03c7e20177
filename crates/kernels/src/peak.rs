//! This CPU's peak f32 multiply-add throughput, the yardstick for every kernel benchmark.
//!
//! Each thread runs independent chains of vector fused multiply-adds, enough of them to cover
//! the FMA latency on every port, so the loop runs at the issue rate of the FMA units. GEMM
//! and convolution report their speed as a fraction of this number measured in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::isa::Isa;

/// Independent accumulator chains: latency 4 x 2 FMA ports = 8 in flight, plus margin.
const CHAINS: usize = 12;
/// Lanes per vector for both paths (a ymm register, or a `wide::f32x8`).
const LANES: usize = 8;
/// Floating-point operations per loop iteration: a multiply and an add per lane per chain.
const FLOPS_PER_ITER: f64 = (CHAINS * LANES * 2) as f64;

/// Measured f32 peak in GFLOP/s when `threads` threads run FMA chains on `isa` at once.
///
/// Runs for about `duration` in several rounds and returns the best round, which is the least
/// disturbed by other work on the machine.
///
/// # Errors
/// [`crate::KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn fma_peak_gflops(isa: Isa, threads: usize, duration: Duration) -> crate::Result<f64> {
    let isa = isa.check()?;
    let threads = threads.max(1);
    // Calibrate: iterations that take about one round's time on one thread.
    let rounds = 5;
    let round = duration / rounds;
    let mut iters: u64 = 1 << 14;
    loop {
        let start = Instant::now();
        black_box(run_chains(isa, iters));
        if start.elapsed() >= round / 4 || iters >= 1 << 34 {
            let scale = round.as_secs_f64() / start.elapsed().as_secs_f64().max(1e-9);
            iters = ((iters as f64 * scale) as u64).max(1 << 10);
            break;
        }
        iters *= 4;
    }
    let mut best: f64 = 0.0;
    for _ in 0..rounds {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| black_box(run_chains(isa, iters)));
            }
        });
        let secs = start.elapsed().as_secs_f64();
        best = best.max(iters as f64 * FLOPS_PER_ITER * threads as f64 / secs / 1e9);
    }
    Ok(best)
}

fn run_chains(isa: Isa, iters: u64) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `fma_peak_gflops` checked that the CPU supports AVX2 and FMA.
        Isa::Avx2Fma => unsafe { chains_avx2(iters) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `fma_peak_gflops` checked that the CPU supports AVX-512F.
        Isa::Avx512 => unsafe { chains_avx512(iters) },
        _ => chains_portable(iters),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chains_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm256_set1_ps(black_box(0.999_999));
    let y = _mm256_set1_ps(black_box(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let mut total = _mm256_setzero_ps();
    for a in acc {
        total = _mm256_add_ps(total, a);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds exactly one ymm register's worth of floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum()
}

/// The AVX-512 chains do twice the work per iteration; the caller halves the iteration count
/// so [`FLOPS_PER_ITER`] stays right.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chains_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm512_set1_ps(black_box(0.999_999));
    let y = _mm512_set1_ps(black_box(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iters / 2 {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, x, y);
        }
    }
    let total = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, a| _mm512_add_ps(s, *a));
    _mm512_reduce_add_ps(total)
}

fn chains_portable(iters: u64) -> f32 {
    use wide::f32x8;
    let x = f32x8::splat(black_box(0.999_999));
    let y = f32x8::splat(black_box(1e-7));
    let mut acc = [f32x8::splat(1.0); CHAINS];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = a.mul_add(x, y);
        }
    }
    acc.iter().fold(f32x8::ZERO, |s, a| s + *a).reduce_add()
}
