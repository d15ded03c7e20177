//! `ventral bench conv`: convolution layers of real networks, each pass timed and compared
//! with a plain GEMM of the same shape measured in the same run.

use anyhow::Result;
use rand::{rngs::StdRng, RngExt, SeedableRng};
use ventral_kernels::conv::{Conv2d, Conv2dParams};
use ventral_kernels::gemm::{gemm, MatMut, MatRef};

use super::peak::round;
use super::timing::median_seconds;

/// A benchmarked layer: name, input `[N, C, H, W]`, weight `[O, C/g, KH, KW]`, parameters.
struct Layer {
    name: &'static str,
    input: [usize; 4],
    weight: [usize; 4],
    params: Conv2dParams,
}

fn layers() -> Vec<Layer> {
    let p = Conv2dParams::default();
    vec![
        Layer {
            name: "lenet5_conv1",
            input: [64, 1, 28, 28],
            weight: [6, 1, 5, 5],
            params: p.padding(2),
        },
        Layer {
            name: "lenet5_conv2",
            input: [64, 6, 14, 14],
            weight: [16, 6, 5, 5],
            params: p,
        },
        Layer {
            name: "vgg_64_56",
            input: [16, 64, 56, 56],
            weight: [64, 64, 3, 3],
            params: p.padding(1),
        },
        Layer {
            name: "vgg_128_28",
            input: [16, 128, 28, 28],
            weight: [128, 128, 3, 3],
            params: p.padding(1),
        },
        Layer {
            name: "resnet20_16_32",
            input: [64, 16, 32, 32],
            weight: [16, 16, 3, 3],
            params: p.padding(1),
        },
        Layer {
            name: "alexnet_conv1",
            input: [16, 3, 224, 224],
            weight: [64, 3, 11, 11],
            params: p.stride(4).padding(2),
        },
        Layer {
            name: "resnet50_1x1_256_64",
            input: [16, 256, 56, 56],
            weight: [64, 256, 1, 1],
            params: p,
        },
    ]
}

fn random_vec(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Median seconds of one `m x k` by `k x n` GEMM.
fn gemm_seconds(reps: usize, m: usize, k: usize, n: usize, rng: &mut StdRng) -> Result<f64> {
    let a = random_vec(rng, m * k);
    let b = random_vec(rng, k * n);
    let mut c = vec![0.0f32; m * n];
    let (av, bv) = (MatRef::row_major(&a, m, k)?, MatRef::row_major(&b, k, n)?);
    Ok(median_seconds(reps, || {
        gemm(
            1.0,
            av,
            bv,
            0.0,
            MatMut::row_major(&mut c, m, n).expect("sized"),
        )
        .expect("shapes agree");
    }))
}

/// Runs the benchmark and prints a table or JSON lines.
pub fn run(threads: usize, reps: usize, json: bool) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    if !json {
        println!("conv2d, {threads} thread(s); median of {reps} runs; GEMM = one GEMM of the same shape (batch folded into N)");
        println!(
            "{:>20}  {:>15}  {:>9}  {:>8}  {:>8}  {:>6}",
            "layer", "pass", "ms", "GFLOP/s", "GEMM", "frac"
        );
    }
    for layer in layers() {
        let conv = Conv2d::new(layer.input, layer.weight, layer.params)?;
        let g = *conv.geometry();
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(&mut rng, len(g.input_shape()));
        let w = random_vec(&mut rng, len(g.weight_shape()));
        let bias = random_vec(&mut rng, g.out_channels);
        let dy = random_vec(&mut rng, len(g.output_shape()));
        let mut y = vec![0.0f32; dy.len()];
        let mut dx = vec![0.0f32; x.len()];
        let mut dw = vec![0.0f32; w.len()];
        let flops = 2.0 * g.macs() as f64;
        // The GEMM each pass amounts to, per group, with the batch folded into the long side.
        let groups = g.params.groups;
        let (o, k, np) = (
            g.out_channels / groups,
            g.in_channels / groups * g.kernel_h * g.kernel_w,
            g.batch * g.out_h * g.out_w,
        );
        let passes: [(&str, (usize, usize, usize)); 3] = [
            ("forward", (o, k, np)),
            ("backward_input", (k, o, np)),
            ("backward_weight", (o, np, k)),
        ];
        // LeNet's acceptance rule: the passes a training step runs (the first layer's input
        // gradient is never needed) together in under twice the time of one GEMM doing all
        // their FLOPs at the forward shape's rate.
        let rule_passes: &[&str] = match layer.name {
            "lenet5_conv1" => &["forward", "backward_weight"],
            "lenet5_conv2" => &["forward", "backward_input", "backward_weight"],
            _ => &[],
        };
        let (mut rule_seconds, mut forward_gemm_gflops) = (0.0, 0.0);
        for (pass, (gm, gk, gn)) in passes {
            let seconds = match pass {
                "forward" => median_seconds(reps, || {
                    conv.forward(&x, &w, Some(&bias), &mut y).expect("sized")
                }),
                "backward_input" => median_seconds(reps, || {
                    conv.backward_input(&dy, &w, &mut dx).expect("sized")
                }),
                _ => median_seconds(reps, || {
                    conv.backward_weight(&x, &dy, &mut dw).expect("sized")
                }),
            };
            let gemm_s = gemm_seconds(reps, gm, gk, gn, &mut rng)? * groups as f64;
            let gflops = flops / seconds / 1e9;
            let gemm_gflops = flops / gemm_s / 1e9;
            let fraction = gemm_gflops.recip() * gflops;
            if pass == "forward" {
                forward_gemm_gflops = gemm_gflops;
            }
            if rule_passes.contains(&pass) {
                rule_seconds += seconds;
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "kernel": "conv2d", "layer": layer.name, "pass": pass, "threads": threads,
                        "ms": (seconds * 1e5).round() / 100.0, "gflops": round(gflops),
                        "gemm_gflops": round(gemm_gflops),
                        "gemm_fraction": (fraction * 1000.0).round() / 1000.0,
                    })
                );
            } else {
                println!(
                    "{:>20}  {:>15}  {:>9.2}  {:>8.1}  {:>8.1}  {:>5.0}%",
                    layer.name,
                    pass,
                    seconds * 1e3,
                    gflops,
                    gemm_gflops,
                    100.0 * fraction
                );
            }
        }
        if !rule_passes.is_empty() {
            let limit = 2.0 * flops * rule_passes.len() as f64 / (forward_gemm_gflops * 1e9);
            print_rule(layer.name, rule_passes, rule_seconds, limit, threads, json);
        }
    }
    Ok(())
}

/// Prints whether a layer's passes together beat `limit_seconds`.
fn print_rule(
    layer: &str,
    passes: &[&str],
    seconds: f64,
    limit_seconds: f64,
    threads: usize,
    json: bool,
) {
    let met = seconds < limit_seconds;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "kernel": "conv2d_rule", "layer": layer, "passes": passes, "threads": threads,
                "ms": (seconds * 1e5).round() / 100.0,
                "limit_ms": (limit_seconds * 1e5).round() / 100.0, "met": met,
            })
        );
    } else {
        println!(
            "{:>20}  {:>15}  {:>9.2}  limit {:.2} ms = 2x one GEMM of the same FLOPs at the forward shape: {}",
            layer,
            "rule",
            seconds * 1e3,
            limit_seconds * 1e3,
            if met { "met" } else { "NOT met" }
        );
    }
}
