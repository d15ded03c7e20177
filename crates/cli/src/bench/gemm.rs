//! `ventral bench gemm`: Ventral's GEMM against matrixmultiply, interleaved in one process.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, bail};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::gemm::{GemmKernel, MatMut, MatRef, gemm, gemm_with, micro_kernel_gflops};
use ventral_kernels::peer::{matrixmultiply_gemm, matrixmultiply_threads};

use super::peak::{self, round};
use super::peer;
use super::timing::{interleaved_medians, round_robin_medians};

/// A GEMM shape: `M x K` times `K x N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    m: usize,
    k: usize,
    n: usize,
    /// Where the shape comes from, for the table.
    label: &'static str,
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let dims: Vec<usize> = s
            .split(['x', 'X'])
            .map(|d| d.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!("`{s}` is not a size: use S or MxKxN, e.g. 1024 or 16x144x65536")
            })?;
        let (m, k, n) = match dims[..] {
            [s] => (s, s, s),
            [m, k, n] => (m, k, n),
            _ => return Err(format!("`{s}` is not a size: use S or MxKxN")),
        };
        if m == 0 || k == 0 || n == 0 {
            return Err(format!("`{s}`: every dimension must be at least 1"));
        }
        Ok(Shape { m, k, n, label: "" })
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.k, self.n)
    }
}

/// Square sizes and the shapes of real layers (batch folded into N where a convolution is
/// lowered to one GEMM).
fn default_shapes() -> Vec<Shape> {
    let square = [64, 128, 256, 512, 1024, 2048].map(|s| Shape {
        m: s,
        k: s,
        n: s,
        label: "square",
    });
    let layers = [
        (64, 576, 3136, "VGG 3x3 conv, 56x56"),
        (128, 1152, 784, "VGG 3x3 conv, 28x28"),
        (16, 144, 65536, "ResNet-20 layer, batch 64"),
        (6, 25, 50176, "LeNet-5 conv1, batch 64"),
        (64, 50176, 576, "VGG weight gradient, batch 16"),
        (128, 4096, 4096, "AlexNet FC, batch 128"),
        (64, 9216, 4096, "AlexNet FC, batch 64"),
    ]
    .map(|(m, k, n, label)| Shape { m, k, n, label });
    square.into_iter().chain(layers).collect()
}

fn random_vec(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `sizes`, or the default shapes if none were given.
fn shapes_or_default(sizes: &[Shape]) -> Vec<Shape> {
    if sizes.is_empty() {
        default_shapes()
    } else {
        sizes.to_vec()
    }
}

/// Random A (`m x k`) and B (`k x n`) for `shape`, and the length of C.
fn operands(rng: &mut StdRng, shape: Shape) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let Shape { m, k, n, .. } = shape;
    let (Some(a_len), Some(b_len), Some(c_len)) =
        (m.checked_mul(k), k.checked_mul(n), m.checked_mul(n))
    else {
        bail!("{shape} is too large");
    };
    Ok((random_vec(rng, a_len), random_vec(rng, b_len), c_len))
}

/// Runs the benchmark over `sizes` (or the default shapes) and prints a table or JSON lines.
pub fn run(threads: usize, sizes: &[Shape], reps: usize, json: bool) -> Result<()> {
    let shapes = shapes_or_default(sizes);
    let peak_gflops = peak::measure(threads)?;
    let peer_threads = matrixmultiply_threads();
    if !json {
        println!(
            "sgemm, {threads} thread(s), FMA peak {:.1} GFLOP/s; median of {reps} interleaved runs",
            peak_gflops
        );
        println!("{}", peer::threads_note(threads, peer_threads));
        println!("{}", ventral_kernels::gemm::GemmKernel::describe_choice());
        println!(
            "{:>18}  {:>9}  {:>14}  {:>6}  {:>6}  shape",
            "MxKxN", "ventral", "matrixmultiply", "ratio", "% peak"
        );
    }
    let mut rng = StdRng::seed_from_u64(42);
    for shape in shapes {
        let Shape { m, k, n, .. } = shape;
        let (a, b, c_len) = operands(&mut rng, shape)?;
        let mut c_ours = vec![0.0f32; c_len];
        let mut c_peer = vec![0.0f32; c_len];
        let a_view = MatRef::row_major(&a, m, k)?;
        let b_view = MatRef::row_major(&b, k, n)?;
        let (ours, peer) = interleaved_medians(
            reps,
            || {
                let c = MatMut::row_major(&mut c_ours, m, n).expect("sized above");
                gemm(1.0, a_view, b_view, 0.0, c).expect("shapes agree");
            },
            || {
                let c = MatMut::row_major(&mut c_peer, m, n).expect("sized above");
                matrixmultiply_gemm(1.0, a_view, b_view, 0.0, c).expect("shapes agree");
            },
        );
        let flops = 2.0 * m as f64 * k as f64 * n as f64;
        let (gflops, peer_gflops) = (flops / ours / 1e9, flops / peer / 1e9);
        let ratio = peer::ratio(gflops / peer_gflops, threads, peer_threads);
        let peak_fraction = gflops / peak_gflops;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "gemm", "m": m, "k": k, "n": n, "threads": threads,
                    "gflops": round(gflops), "peer": "matrixmultiply", "peer_threads": peer_threads,
                    "peer_gflops": round(peer_gflops),
                    "ratio": ratio.map(|r| (r * 1000.0).round() / 1000.0),
                    "peak_fraction": (peak_fraction * 1000.0).round() / 1000.0,
                })
            );
        } else {
            println!(
                "{:>18}  {:>9.1}  {:>14.1}  {:>6}  {:>5.1}%  {}",
                shape.to_string(),
                gflops,
                peer_gflops,
                peer::ratio_cell(ratio),
                100.0 * peak_fraction,
                shape.label
            );
        }
    }
    Ok(())
}

/// Times every GEMM micro-kernel this CPU runs on `sizes` (or the default shapes), side by
/// side: the candidates take turns within each round, so they see the same machine state,
/// and the one [`gemm`] chooses is marked. This is how the default choice is checked on a
/// new kind of core.
pub fn run_candidates(threads: usize, sizes: &[Shape], reps: usize, json: bool) -> Result<()> {
    let shapes = shapes_or_default(sizes);
    let candidates = GemmKernel::available();
    let chosen = GemmKernel::detect();
    let peak_gflops = peak::measure(threads)?;
    if !json {
        println!(
            "sgemm candidates, {threads} thread(s), FMA peak {peak_gflops:.1} GFLOP/s; \
             median of {reps} interleaved runs, GFLOP/s (* = the kernel chosen)"
        );
        println!("{}", GemmKernel::describe_choice());
        let names: Vec<String> = candidates
            .iter()
            .map(|&c| format!("{:>14}", mark(c, chosen)))
            .collect();
        println!("{:>18}  {}  shape", "MxKxN", names.join("  "));
    }
    // The tiles alone first: a product's speed means more beside its kernel's.
    let alone = kernels_alone(&candidates)?;
    let thread_peak = if threads == 1 {
        peak_gflops
    } else {
        peak::measure(1)?
    };
    if json {
        for (&kernel, &g) in candidates.iter().zip(&alone) {
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "gemm_kernel_alone", "candidate": kernel.name(),
                    "chosen": kernel == chosen, "threads": 1, "gflops": round(g),
                    "peak_fraction": (g / thread_peak * 1000.0).round() / 1000.0,
                })
            );
        }
    } else {
        let cells: Vec<String> = alone.iter().map(|g| format!("{g:>14.1}")).collect();
        let shares: Vec<String> = alone
            .iter()
            .map(|g| format!("{:>13.1}%", 100.0 * g / thread_peak))
            .collect();
        println!(
            "{:>18}  {}  micro-kernel alone, 1 thread: A panel in L1, B panels in L2, C in cache",
            "kernel alone",
            cells.join("  ")
        );
        println!(
            "{:>18}  {}  of the 1-thread peak, {thread_peak:.1} GFLOP/s",
            "",
            shares.join("  ")
        );
    }
    let mut rng = StdRng::seed_from_u64(42);
    for shape in shapes {
        let Shape { m, k, n, .. } = shape;
        let (a, b, c_len) = operands(&mut rng, shape)?;
        let a_view = MatRef::row_major(&a, m, k)?;
        let b_view = MatRef::row_major(&b, k, n)?;
        let mut outputs = vec![vec![0.0f32; c_len]; candidates.len()];
        let mut runs: Vec<Box<dyn FnMut() + '_>> = candidates
            .iter()
            .zip(&mut outputs)
            .map(|(&kernel, c_out)| {
                Box::new(move || {
                    let c = MatMut::row_major(c_out, m, n).expect("sized above");
                    gemm_with(kernel, 1.0, a_view, b_view, 0.0, c).expect("a supported kernel");
                }) as Box<dyn FnMut()>
            })
            .collect();
        let mut refs: Vec<&mut dyn FnMut()> = runs.iter_mut().map(|f| &mut **f as _).collect();
        let seconds = round_robin_medians(reps, &mut refs);
        let flops = 2.0 * m as f64 * k as f64 * n as f64;
        let gflops: Vec<f64> = seconds.iter().map(|s| flops / s / 1e9).collect();
        if json {
            for (&kernel, &g) in candidates.iter().zip(&gflops) {
                println!(
                    "{}",
                    serde_json::json!({
                        "kernel": "gemm_candidate", "candidate": kernel.name(),
                        "chosen": kernel == chosen, "m": m, "k": k, "n": n,
                        "threads": threads, "gflops": round(g),
                        "peak_fraction": (g / peak_gflops * 1000.0).round() / 1000.0,
                    })
                );
            }
        } else {
            let cells: Vec<String> = gflops.iter().map(|g| format!("{g:>14.1}")).collect();
            println!(
                "{:>18}  {}  {}",
                shape.to_string(),
                cells.join("  "),
                shape.label
            );
        }
    }
    Ok(())
}

/// Each candidate's micro-kernel alone ([`micro_kernel_gflops`]) on this thread, the
/// candidates taking turns: the median of five rounds of 60 ms each.
fn kernels_alone(candidates: &[GemmKernel]) -> Result<Vec<f64>> {
    const ROUNDS: usize = 5;
    let mut rates = vec![Vec::with_capacity(ROUNDS); candidates.len()];
    for _ in 0..ROUNDS {
        for (&kernel, rate) in candidates.iter().zip(&mut rates) {
            rate.push(micro_kernel_gflops(kernel, Duration::from_millis(60))?);
        }
    }
    Ok(rates
        .into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            r[ROUNDS / 2]
        })
        .collect())
}

/// A candidate's name, starred if it is the chosen kernel.
fn mark(kernel: GemmKernel, chosen: GemmKernel) -> String {
    if kernel == chosen {
        format!("{kernel}*")
    } else {
        kernel.to_string()
    }
}
