//! `ventral bench train --profile`: where the time of a training step goes, by op kind,
//! from [`ventral_autograd::profile`] (each op's forward and backward, the convolution's
//! input and weight gradients apart) and the optimizer step timed here; "other" is the rest
//! of the step's wall time (graph bookkeeping, gradient accumulation, freeing memory).

use std::time::{Duration, Instant};

use anyhow::Result;
use ventral_autograd::profile::{self, Entry, Pass};

/// The rows of the profile, in print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `conv2d` forward.
    ConvForward,
    /// `conv2d`'s input gradient.
    ConvInputGrad,
    /// `conv2d`'s weight and bias gradients, and the rest of its backward (allocation).
    ConvWeightGrad,
    /// `batch_norm` forward.
    BatchNormForward,
    /// `batch_norm` backward.
    BatchNormBackward,
    /// `relu` forward.
    ReluForward,
    /// `relu` backward.
    ReluBackward,
    /// `batch_norm_relu` (batch norm and ReLU fused, in training) forward.
    BatchNormReluForward,
    /// `batch_norm_relu` backward.
    BatchNormReluBackward,
    /// Max, average and adaptive average pooling, forward and backward.
    Pooling,
    /// Matrix products (the linear layers' `matmul`), forward and backward.
    Matmul,
    /// The loss (`cross_entropy` and what it is built from), forward and backward.
    Loss,
    /// The optimizer step.
    Optimizer,
    /// Every other recorded op (additions: residual and bias; reshapes; dropout).
    OtherOps,
    /// The rest of the step's wall time.
    Other,
}

impl Kind {
    /// Every row, in print order.
    pub const ALL: [Kind; 15] = [
        Kind::ConvForward,
        Kind::ConvInputGrad,
        Kind::ConvWeightGrad,
        Kind::BatchNormForward,
        Kind::BatchNormBackward,
        Kind::ReluForward,
        Kind::ReluBackward,
        Kind::BatchNormReluForward,
        Kind::BatchNormReluBackward,
        Kind::Pooling,
        Kind::Matmul,
        Kind::Loss,
        Kind::Optimizer,
        Kind::OtherOps,
        Kind::Other,
    ];

    /// The row's name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConvForward => "conv_forward",
            Kind::ConvInputGrad => "conv_input_grad",
            Kind::ConvWeightGrad => "conv_weight_grad",
            Kind::BatchNormForward => "batch_norm_forward",
            Kind::BatchNormBackward => "batch_norm_backward",
            Kind::ReluForward => "relu_forward",
            Kind::ReluBackward => "relu_backward",
            Kind::BatchNormReluForward => "batch_norm_relu_forward",
            Kind::BatchNormReluBackward => "batch_norm_relu_backward",
            Kind::Pooling => "pooling",
            Kind::Matmul => "linear_matmul",
            Kind::Loss => "loss",
            Kind::Optimizer => "optimizer",
            Kind::OtherOps => "other_ops",
            Kind::Other => "other",
        }
    }

    /// The row of the profiler's entry for `op` in `pass`.
    fn of(op: &str, pass: Pass) -> Kind {
        let forward = pass == Pass::Forward;
        match op {
            OPTIMIZER => Kind::Optimizer,
            "conv2d" if forward => Kind::ConvForward,
            "conv2d" | profile::CONV_WEIGHT_GRAD | profile::CONV_BIAS_GRAD => Kind::ConvWeightGrad,
            profile::CONV_INPUT_GRAD => Kind::ConvInputGrad,
            "batch_norm" if forward => Kind::BatchNormForward,
            "batch_norm" => Kind::BatchNormBackward,
            "relu" if forward => Kind::ReluForward,
            "relu" => Kind::ReluBackward,
            "batch_norm_relu" if forward => Kind::BatchNormReluForward,
            "batch_norm_relu" => Kind::BatchNormReluBackward,
            "max_pool2d" | "avg_pool2d" | "adaptive_avg_pool2d" => Kind::Pooling,
            "matmul" | "linear" => Kind::Matmul,
            "cross_entropy" | "log_softmax" | "softmax" | "nll_loss" => Kind::Loss,
            _ => Kind::OtherOps,
        }
    }
}

/// The name of the optimizer step's span (the trainer's).
pub const OPTIMIZER: &str = ventral_train::OPTIMIZER_SPAN;

/// Mean time per training step, by [`Kind`], over the profiled steps, in milliseconds.
#[derive(Debug)]
pub struct StepProfile {
    /// Mean wall time of a step.
    pub step_ms: f64,
    /// Mean time per row, in [`Kind::ALL`] order; they add up to `step_ms`. Only a
    /// profiler that counted some time twice could make the last one ("other") negative.
    pub kinds: Vec<(Kind, f64)>,
    /// The raw entries, per step: `(op, pass, ms, calls)`.
    pub ops: Vec<(&'static str, Pass, f64, f64)>,
}

/// Runs `steps` training steps under the profiler on this thread after one warm-up step.
/// `step` runs a whole step of the library's `Trainer`: forward, loss, backward, and the
/// optimizer inside `profile::span(OPTIMIZER, ..)` (a no-op when the profiler is off).
pub fn profile_steps(steps: usize, mut step: impl FnMut() -> Result<()>) -> Result<StepProfile> {
    step()?; // warm-up: allocate buffers, fault in pages
    profile::enable();
    let mut wall = Duration::ZERO;
    let result = (0..steps).try_for_each(|_| -> Result<()> {
        profile::mark();
        let start = Instant::now();
        step()?;
        wall += start.elapsed();
        Ok(())
    });
    let entries = profile::take();
    profile::disable();
    result?;
    Ok(summarize(&entries, wall, steps))
}

/// Sums `entries` (collected over `steps` steps taking `wall` in all) into rows.
fn summarize(entries: &[Entry], wall: Duration, steps: usize) -> StepProfile {
    let per_step = |d: Duration| d.as_secs_f64() * 1e3 / steps.max(1) as f64;
    let mut kinds: Vec<(Kind, f64)> = Kind::ALL.iter().map(|&k| (k, 0.0)).collect();
    for e in entries {
        let row = Kind::ALL
            .iter()
            .position(|&k| k == Kind::of(e.op, e.pass))
            .unwrap_or(Kind::ALL.len() - 1);
        kinds[row].1 += per_step(e.time);
    }
    // Entries never overlap and all lie inside the steps (see `profile`), so this is the
    // time no entry covers; it is not clamped, so double counting would show.
    let measured: f64 = kinds.iter().map(|k| k.1).sum();
    let step_ms = per_step(wall);
    kinds[Kind::ALL.len() - 1].1 = step_ms - measured;
    StepProfile {
        step_ms,
        kinds,
        ops: entries
            .iter()
            .map(|e| {
                let calls = e.calls as f64 / steps.max(1) as f64;
                (e.op, e.pass, per_step(e.time), calls)
            })
            .collect(),
    }
}

/// Percent of `part` in `whole`.
fn percent(part: f64, whole: f64) -> f64 {
    100.0 * part / whole.max(1e-12)
}

/// What was profiled: a training step, or an inference batch (`bench infer --profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profiled {
    /// Forward, loss, backward and optimizer step.
    TrainStep,
    /// One eval-mode forward pass without a graph.
    Inference,
}

/// Prints `p` for `model` as a table, or as one JSON line (`"kernel"` is `train_profile` or
/// `infer_profile`).
pub fn print(
    p: &StepProfile,
    what: Profiled,
    model: &str,
    batch: usize,
    threads: usize,
    steps: usize,
    json: bool,
) {
    let kernel = match what {
        Profiled::TrainStep => "train_profile",
        Profiled::Inference => "infer_profile",
    };
    let ms = |d: f64| (d * 1e3).round() / 1e3;
    if json {
        let kinds: Vec<_> = p
            .kinds
            .iter()
            .map(|&(k, d)| {
                serde_json::json!({
                    "kind": k.name(), "ms_per_step": ms(d),
                    "percent": (percent(d, p.step_ms) * 100.0).round() / 100.0,
                })
            })
            .collect();
        let ops: Vec<_> = p
            .ops
            .iter()
            .map(|&(op, pass, d, calls)| {
                serde_json::json!({
                    "op": op, "pass": format!("{pass:?}").to_lowercase(),
                    "ms_per_step": ms(d), "calls_per_step": calls,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "kernel": kernel, "model": model, "batch": batch, "threads": threads,
                "steps": steps, "step_ms": ms(p.step_ms), "kinds": kinds, "ops": ops,
            })
        );
        return;
    }
    let unit = match what {
        Profiled::TrainStep => "training step",
        Profiled::Inference => "inference batch",
    };
    println!(
        "{model}: batch {batch}, {threads} thread(s), {:.2} ms per {unit} (mean of {steps} profiled)",
        ms(p.step_ms)
    );
    println!("  {:<24}  {:>9}  {:>6}", "kind", "ms/step", "%");
    for &(k, d) in &p.kinds {
        println!(
            "  {:<24}  {:>9.3}  {:>6.1}",
            k.name(),
            ms(d),
            percent(d, p.step_ms)
        );
    }
    // What `other_ops` holds, forward and backward together, largest first.
    let mut others: Vec<(&str, f64)> = Vec::new();
    for &(op, pass, d, _) in &p.ops {
        if Kind::of(op, pass) != Kind::OtherOps {
            continue;
        }
        match others.iter_mut().find(|o| o.0 == op) {
            Some(o) => o.1 += d,
            None => others.push((op, d)),
        }
    }
    others.sort_by(|a, b| b.1.total_cmp(&a.1));
    if !others.is_empty() {
        let list: Vec<String> = others
            .iter()
            .map(|(op, d)| format!("{op} {d:.3}"))
            .collect();
        println!("  other_ops (ms/step): {}", list.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: &'static str, pass: Pass, ms: u64) -> Entry {
        Entry {
            op,
            pass,
            time: Duration::from_millis(ms),
            calls: 2,
        }
    }

    #[test]
    fn rows_sum_the_entries_and_other_is_the_rest_of_the_wall_time() {
        // Two steps taking 44 ms in all: per step, half of each entry's time.
        let entries = [
            entry("conv2d", Pass::Forward, 4),
            entry("conv2d", Pass::Backward, 2),
            entry(profile::CONV_WEIGHT_GRAD, Pass::Backward, 6),
            entry(profile::CONV_INPUT_GRAD, Pass::Backward, 8),
            entry("relu", Pass::Forward, 2),
            entry("relu", Pass::Backward, 4),
            entry("batch_norm_relu", Pass::Forward, 2),
            entry("batch_norm_relu", Pass::Backward, 2),
            entry("add", Pass::Forward, 2),
            entry("add", Pass::Backward, 2),
            entry(OPTIMIZER, Pass::Other, 2),
        ];
        let p = summarize(&entries, Duration::from_millis(44), 2);
        let row = |k: Kind| p.kinds.iter().find(|r| r.0 == k).unwrap().1;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(p.step_ms, 22.0), "{p:?}");
        assert!(close(row(Kind::ConvForward), 2.0), "{p:?}");
        assert!(close(row(Kind::ConvInputGrad), 4.0), "{p:?}");
        // conv2d's own backward (2) plus the weight gradient (6), halved.
        assert!(close(row(Kind::ConvWeightGrad), 4.0), "{p:?}");
        assert!(close(row(Kind::ReluForward), 1.0), "{p:?}");
        assert!(close(row(Kind::ReluBackward), 2.0), "{p:?}");
        assert!(close(row(Kind::BatchNormReluForward), 1.0), "{p:?}");
        assert!(close(row(Kind::BatchNormReluBackward), 1.0), "{p:?}");
        assert!(close(row(Kind::OtherOps), 2.0), "{p:?}");
        assert!(close(row(Kind::Optimizer), 1.0), "{p:?}");
        assert!(close(row(Kind::BatchNormForward), 0.0), "{p:?}");
        // 22 ms per step less the 18 ms the entries cover.
        assert!(close(row(Kind::Other), 4.0), "{p:?}");
        let total: f64 = p.kinds.iter().map(|k| k.1).sum();
        assert!(close(total, p.step_ms), "{p:?}");
        assert_eq!(p.ops.len(), entries.len());
        assert!(
            p.ops.iter().all(|o| o.3 == 1.0),
            "two calls over two steps: {p:?}"
        );
    }
}
