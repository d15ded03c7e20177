//! `ventral bench peak`: the FMA peak every other benchmark is measured against.

use std::time::Duration;

use anyhow::Result;
use ventral_kernels::Isa;
use ventral_kernels::peak::fma_peak_gflops;

/// How long each peak measurement runs.
pub const PEAK_DURATION: Duration = Duration::from_millis(500);

/// Measured peak GFLOP/s on `threads` threads with the default instruction set.
pub fn measure(threads: usize) -> Result<f64> {
    Ok(fma_peak_gflops(Isa::detect(), threads, PEAK_DURATION)?)
}

/// Prints the peak on one thread and on `threads` threads.
pub fn run(threads: usize, json: bool) -> Result<()> {
    let isa = Isa::detect();
    let mut counts = vec![1];
    if threads > 1 {
        counts.push(threads);
    }
    if !json {
        println!("f32 FMA peak ({} path)", isa.name());
    }
    for t in counts {
        let gflops = measure(t)?;
        if json {
            println!(
                "{}",
                serde_json::json!({"kernel": "peak", "isa": isa.name(), "threads": t, "gflops": round(gflops)})
            );
        } else {
            println!("  {t:>3} thread(s): {gflops:8.1} GFLOP/s");
        }
    }
    Ok(())
}

/// Rounds to one decimal for printing.
pub fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
