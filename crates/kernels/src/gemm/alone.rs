//! A candidate micro-kernel alone: its register tile on packed panels that already sit in
//! cache, with none of a product's packing, blocking or memory traffic around it.
//!
//! Set beside a product's speed, it says where the product's time goes. On a Xeon with two
//! 512-bit FMA ports (family 6 model 0xa7), alternating with the products in one process at
//! 1 thread, the chosen 8 x 48 tile ran at 200-217 GFLOP/s alone (85-95 % of `ventral bench
//! peak` over the session's runs), and the products at 0.87x of that for 1024^3 and 2048^3,
//! 0.81x for 128x1152x784, 0.72-0.73x for 64x576x3136 and 128x4096x4096 and 0.44x for
//! 16x144x65536: what keeps those products from the peak is mostly around the tile (reading
//! B from memory to pack it), not the tile. Panels must be 64-byte aligned, as the packers
//! leave them: a 12 x 32 tile whose B panels were only 16-byte aligned ran at 205 GFLOP/s
//! against 218, every B load straddling two cache lines.

use std::time::{Duration, Instant};

use super::choice::GemmKernel;
use super::driver::aligned;
use super::microkernel::{BPanel, CTile, MicroKernel, Prefetch};
use crate::error::Result;

/// B panels one sweep of the A panel crosses: for every candidate's tile a few hundred KiB
/// at the machine's KC, more than an L1 holds and less than an L2, as in a product's block.
const B_PANELS: usize = 16;

/// GFLOP/s of `kernel`'s micro-kernel alone, timed for about `duration`: one A panel (in
/// L1) sweeps [`B_PANELS`] packed B panels (from L2) into a band of C that stays in cache,
/// in the order and at the depth (KC) a large product runs it, with every panel 64-byte
/// aligned as the packers leave them.
///
/// # Errors
/// [`crate::KernelError::UnsupportedIsa`] if this CPU cannot run `kernel`.
pub fn micro_kernel_gflops(kernel: GemmKernel, duration: Duration) -> Result<f64> {
    let run = Alone::new(kernel.check()?);
    let mut buffers = run.buffers();
    // One untimed sweep brings the panels into cache.
    run.sweep(&mut buffers);
    let start = Instant::now();
    let mut sweeps = 0u64;
    while sweeps == 0 || start.elapsed() < duration {
        run.sweep(&mut buffers);
        sweeps += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(run.flops_per_sweep() * sweeps as f64 / seconds / 1e9)
}

/// The tile and depth a large product of one candidate runs.
struct Alone {
    kernel: MicroKernel,
}

/// The packed panels and the band of C one measurement works on, with room to align them.
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Alone {
    fn new(kernel: GemmKernel) -> Alone {
        // As many rows as a large product: the candidate's own tile, not the narrow one.
        Alone {
            kernel: MicroKernel::of(kernel, 1024),
        }
    }

    /// A panel of 1/16 and B panels of 1/16, so each call adds `kc / 256` to every element
    /// of its tile: exact in f32 for any sweep count a measurement reaches.
    fn buffers(&self) -> Buffers {
        let MicroKernel { mr, nr, kc, .. } = self.kernel;
        let mut buffers = Buffers {
            a: Vec::new(),
            b: Vec::new(),
            c: Vec::new(),
        };
        aligned(&mut buffers.a, mr * kc).fill(1.0 / 16.0);
        aligned(&mut buffers.b, B_PANELS * nr * kc).fill(1.0 / 16.0);
        aligned(&mut buffers.c, mr * B_PANELS * nr).fill(0.0);
        buffers
    }

    fn flops_per_sweep(&self) -> f64 {
        let MicroKernel { mr, nr, kc, .. } = self.kernel;
        2.0 * (mr * nr * kc * B_PANELS) as f64
    }

    /// One sweep: `C += A_panel · B_panel` for every B panel, C's band row-major.
    fn sweep(&self, buffers: &mut Buffers) {
        let MicroKernel { mr, nr, kc, .. } = self.kernel;
        let width = B_PANELS * nr;
        let a = aligned(&mut buffers.a, mr * kc).as_ptr();
        let b = aligned(&mut buffers.b, B_PANELS * nr * kc).as_ptr();
        let c = aligned(&mut buffers.c, mr * width).as_mut_ptr();
        for panel in 0..B_PANELS {
            let b_panel = BPanel {
                ptr: b.wrapping_add(panel * nr * kc),
                row_stride: nr,
                prefetch: Prefetch::NONE,
            };
            let tile = CTile {
                ptr: c.wrapping_add(panel * nr),
                row_stride: width,
                col_stride: 1,
                rows: mr,
                cols: nr,
            };
            // SAFETY: the kernel was checked to run on this CPU (`new`); the A panel holds
            // kc * mr floats, each B panel kc rows of nr, and the tile mr rows of nr floats
            // inside the band, owned by this call.
            unsafe { (self.kernel.run)(kc, 1.0, a, b_panel, 1.0, &tile) };
        }
    }

    /// Every element of C after `sweeps` sweeps (and the warm-up one): what each should be.
    #[cfg(test)]
    fn expected(&self, sweeps: usize) -> f32 {
        ((sweeps + 1) * self.kernel.kc) as f32 / 256.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every candidate computes its sums while it is timed (C holds exactly what the calls
    /// add up to) and reports a finite, positive rate; a kernel this CPU cannot run is
    /// refused, not timed.
    #[test]
    fn each_candidate_is_timed_on_sums_it_really_computes() {
        for kernel in GemmKernel::available() {
            let run = Alone::new(kernel);
            let mut buffers = run.buffers();
            for _ in 0..4 {
                run.sweep(&mut buffers);
            }
            let MicroKernel { mr, nr, .. } = run.kernel;
            let band = aligned(&mut buffers.c, mr * B_PANELS * nr);
            let want = run.expected(3);
            assert!(
                band.iter().all(|&v| v == want),
                "{kernel}: C is not {want} everywhere"
            );
            let gflops = micro_kernel_gflops(kernel, Duration::from_millis(5)).unwrap();
            assert!(gflops.is_finite() && gflops > 0.0, "{kernel}: {gflops}");
        }
        for kernel in GemmKernel::ALL {
            if !kernel.is_supported() {
                assert!(micro_kernel_gflops(kernel, Duration::from_millis(5)).is_err());
            }
        }
    }
}
