//! `ventral bench conv`: convolution layers of real networks, each pass as a share of this
//! CPU's FMA peak (measured in the same run) and against a peer that does the same work the
//! textbook way, lowering included: im2col or col2im around matrixmultiply's sgemm
//! (`ventral_kernels::peer::conv`). The peer's results are checked against Ventral's before anything
//! is timed, and the two are timed in alternating repetitions. Each pass names the path the
//! convolution planner chose for it (`ventral_kernels::conv::plan`; `VENTRAL_CONV` forces one).

use anyhow::{Result, bail};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::conv::{Conv2d, Conv2dParams, Pass};
use ventral_kernels::peer::conv::{LoweredConv, PassInputs, normwise_difference, run_ventral};
use ventral_kernels::peer::matrixmultiply_threads;

use super::peak::{self, round};
use super::peer;
use super::timing::interleaved_medians;

/// Largest accepted `max |ventral - peer| / max |ventral|` per pass. Both sum the same
/// products in different orders; a sum of `L` f32 terms of random sign drifts by about
/// `√L · 2⁻²⁴` of its size, 1.3e-5 for the longest sums here (the weight gradients, `L =
/// batch · OH · OW = 50176`), and the normwise measure is smaller still. 1e-4 leaves a margin
/// of 8 while any wrong tap, offset or missing term shows at the size of the values (about 1).
const TOLERANCE: f64 = 1e-4;

/// A benchmarked layer: name, input `[N, C, H, W]`, weight `[O, C/g, KH, KW]`, parameters.
struct Layer {
    name: &'static str,
    input: [usize; 4],
    weight: [usize; 4],
    params: Conv2dParams,
}

fn layers() -> Vec<Layer> {
    let p = Conv2dParams::default();
    [
        ("lenet5_conv1", [64, 1, 28, 28], [6, 1, 5, 5], p.padding(2)),
        ("lenet5_conv2", [64, 6, 14, 14], [16, 6, 5, 5], p),
        ("vgg_64_56", [16, 64, 56, 56], [64, 64, 3, 3], p.padding(1)),
        (
            "vgg_128_28",
            [16, 128, 28, 28],
            [128, 128, 3, 3],
            p.padding(1),
        ),
        (
            "resnet20_16_32",
            [64, 16, 32, 32],
            [16, 16, 3, 3],
            p.padding(1),
        ),
        (
            "vgg11_cifar_256_8",
            [64, 256, 8, 8],
            [256, 256, 3, 3],
            p.padding(1),
        ),
        (
            "resnet20_32_16",
            [128, 32, 16, 16],
            [32, 32, 3, 3],
            p.padding(1),
        ),
        (
            "alexnet_conv1",
            [16, 3, 224, 224],
            [64, 3, 11, 11],
            p.stride(4).padding(2),
        ),
        ("resnet50_1x1_256_64", [16, 256, 56, 56], [64, 256, 1, 1], p),
    ]
    .into_iter()
    .map(|(name, input, weight, params)| Layer {
        name,
        input,
        weight,
        params,
    })
    .collect()
}

fn random_vec(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The passes a training step runs for `layer`: all three, but a network's first layer
/// needs no input gradient.
fn step_passes(layer: &str) -> &'static [Pass] {
    if layer.ends_with("conv1") {
        &[Pass::Forward, Pass::WeightGradient]
    } else {
        &Pass::ALL
    }
}

/// Runs the benchmark and prints a table or JSON lines.
pub fn run(threads: usize, reps: usize, json: bool) -> Result<()> {
    let peak_gflops = peak::measure(threads)?;
    let peer_threads = matrixmultiply_threads();
    let mut rng = StdRng::seed_from_u64(7);
    if !json {
        println!(
            "conv2d, {threads} thread(s), FMA peak {peak_gflops:.1} GFLOP/s; median of {reps} interleaved runs"
        );
        println!(
            "peer = im2col / col2im (rayon, {threads} thread(s)) around matrixmultiply sgemm; {}",
            peer::threads_note(threads, peer_threads)
        );
        println!(
            "{:>20}  {:>15}  {:>12}  {:>9}  {:>8}  {:>6}  {:>9}  {:>8}  {:>6}  {:>8}",
            "layer",
            "pass",
            "path",
            "ms",
            "GFLOP/s",
            "% peak",
            "peer ms",
            "GFLOP/s",
            "ratio",
            "diff"
        );
    }
    for layer in layers() {
        let conv = Conv2d::new(layer.input, layer.weight, layer.params)?;
        let g = *conv.geometry();
        let mut lowered = LoweredConv::new(&g)?;
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(&mut rng, len(g.input_shape()));
        let w = random_vec(&mut rng, len(g.weight_shape()));
        let bias = random_vec(&mut rng, g.out_channels);
        let dy = random_vec(&mut rng, len(g.output_shape()));
        let flops = 2.0 * g.macs() as f64;
        let (mut step_ours, mut step_peer) = (0.0, 0.0);
        let inputs = PassInputs {
            x: &x,
            w: &w,
            bias: Some(&bias),
            dy: &dy,
        };
        for pass in Pass::ALL {
            let size = pass.output_len(&g);
            let (mut ours_out, mut peer_out) = (vec![0.0f32; size], vec![0.0f32; size]);
            let ours = |out: &mut [f32]| run_ventral(&conv, pass, &inputs, out).expect("sized");
            let mut theirs = |out: &mut [f32]| lowered.run(pass, &inputs, out).expect("sized");
            ours(&mut ours_out);
            theirs(&mut peer_out);
            let diff = normwise_difference(&peer_out, &ours_out);
            if diff.is_nan() || diff > TOLERANCE {
                bail!(
                    "{} {}: the peer's result differs from Ventral's by {diff:.1e} of the largest value (tolerance {TOLERANCE:.0e})",
                    layer.name,
                    pass.name()
                );
            }
            let (seconds, peer_seconds) =
                interleaved_medians(reps, || ours(&mut ours_out), || theirs(&mut peer_out));
            if step_passes(layer.name).contains(&pass) {
                step_ours += seconds;
                step_peer += peer_seconds;
            }
            let row = Row {
                layer: layer.name,
                pass: pass.name(),
                path: conv.plan().get(pass).name().to_string(),
                threads,
                peer_threads,
                flops,
                peak_gflops,
                seconds,
                peer_seconds,
                diff: Some(diff),
            };
            row.print(json);
        }
        let passes = step_passes(layer.name);
        Row {
            layer: layer.name,
            pass: if passes.len() == 3 {
                "step all 3"
            } else {
                "step fwd+wgrad"
            },
            path: conv.plan().to_string(),
            threads,
            peer_threads,
            flops: flops * passes.len() as f64,
            peak_gflops,
            seconds: step_ours,
            peer_seconds: step_peer,
            diff: None,
        }
        .print_step(passes, json);
    }
    Ok(())
}

/// One measured pass (or a layer's training-step total).
struct Row<'a> {
    layer: &'a str,
    pass: &'a str,
    /// The planner's path for the pass (for a step line, the whole plan).
    path: String,
    threads: usize,
    peer_threads: usize,
    flops: f64,
    peak_gflops: f64,
    seconds: f64,
    peer_seconds: f64,
    /// `max |peer - ventral| / max |ventral|` (passes only).
    diff: Option<f64>,
}

impl Row<'_> {
    fn gflops(&self) -> (f64, f64) {
        (
            self.flops / self.seconds / 1e9,
            self.flops / self.peer_seconds / 1e9,
        )
    }

    fn ratio(&self) -> Option<f64> {
        peer::ratio(
            self.peer_seconds / self.seconds,
            self.threads,
            self.peer_threads,
        )
    }

    fn print(&self, json: bool) {
        let (gflops, peer_gflops) = self.gflops();
        let peak_fraction = gflops / self.peak_gflops;
        let ms = |s: f64| (s * 1e5).round() / 100.0;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "conv2d", "layer": self.layer, "pass": self.pass, "path": self.path,
                    "threads": self.threads, "ms": ms(self.seconds), "gflops": round(gflops),
                    "peak_fraction": (peak_fraction * 1000.0).round() / 1000.0,
                    "peer": "im2col+matrixmultiply", "peer_threads": self.peer_threads,
                    "peer_ms": ms(self.peer_seconds), "peer_gflops": round(peer_gflops),
                    "ratio": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
                    "max_rel_diff": self.diff,
                })
            );
        } else {
            println!(
                "{:>20}  {:>15}  {:>12}  {:>9.2}  {:>8.1}  {:>5.1}%  {:>9.2}  {:>8.1}  {:>6}  {:>8}",
                self.layer,
                self.pass,
                self.path,
                self.seconds * 1e3,
                gflops,
                100.0 * peak_fraction,
                self.peer_seconds * 1e3,
                peer_gflops,
                peer::ratio_cell(self.ratio()),
                self.diff.map_or(String::new(), |d| format!("{d:.1e}")),
            );
        }
    }

    /// The training-step line: the passes a step runs, summed on each side.
    fn print_step(&self, passes: &[Pass], json: bool) {
        if json {
            let passes: Vec<&str> = passes.iter().map(|p| p.name()).collect();
            let (gflops, peer_gflops) = self.gflops();
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "conv2d_step", "layer": self.layer, "passes": passes,
                    "path": self.path,
                    "threads": self.threads, "ms": (self.seconds * 1e5).round() / 100.0,
                    "gflops": round(gflops),
                    "peak_fraction": (gflops / self.peak_gflops * 1000.0).round() / 1000.0,
                    "peer_threads": self.peer_threads,
                    "peer_ms": (self.peer_seconds * 1e5).round() / 100.0,
                    "peer_gflops": round(peer_gflops),
                    "ratio": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
                })
            );
        } else {
            // The step line's path column stays blank: each pass's line names its path.
            Row {
                path: String::new(),
                ..*self
            }
            .print(false);
        }
    }
}
