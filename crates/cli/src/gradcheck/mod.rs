//! `ventral gradcheck`: every differentiable op and every layer type, gradient-checked on
//! small random inputs against central differences (`ventral_autograd::gradcheck` with its
//! default, f32-calibrated tolerances), as a table of the largest errors per op.

mod layers;
mod ops;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use ventral_autograd::{GradcheckOptions, GradcheckReport, Tensor};

/// Arguments of `ventral gradcheck`.
#[derive(Debug, Args)]
pub struct GradcheckArgs {
    /// Check only this op or layer (e.g. `conv2d`, `Linear`); repeat for several. Without
    /// it, everything is checked.
    #[arg(long = "op", value_name = "NAME")]
    ops: Vec<String>,
    /// Print one JSON object per check instead of a table.
    #[arg(long)]
    json: bool,
}

/// What a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A differentiable tensor op of `ventral-autograd`.
    Op,
    /// A layer of `ventral-nn` (input and every parameter).
    Layer,
}

/// One named check: runs one or more gradient checks and returns their reports together.
pub struct Case {
    /// The op's method name, or the layer's type name.
    pub name: &'static str,
    /// Op or layer.
    pub kind: Kind,
    /// Runs the check.
    pub run: fn() -> ventral_autograd::Result<GradcheckReport>,
}

/// Runs `f` through the gradient checker with the default options.
pub fn check(
    f: impl Fn(&[Tensor]) -> ventral_autograd::Result<Tensor>,
    inputs: &[Tensor],
) -> ventral_autograd::Result<GradcheckReport> {
    ventral_autograd::gradcheck(f, inputs, &GradcheckOptions::default())
}

/// The reports of several checks of one op, as one.
pub fn all(
    reports: impl IntoIterator<Item = ventral_autograd::Result<GradcheckReport>>,
) -> ventral_autograd::Result<GradcheckReport> {
    let mut inputs = Vec::new();
    for r in reports {
        inputs.extend(r?.inputs);
    }
    Ok(GradcheckReport { inputs })
}

/// Uniform values in `[lo, hi)` from `seed`.
pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), lo, hi, seed).expect("a valid shape and range")
}

/// Pairwise-distinct values on a grid `spacing` apart, offset by `spacing / 2` from 0 and
/// shuffled by `seed`: no element sits near 0 or near another, so kinks (relu at 0, ties in
/// max) stay far beyond the checker's `2h = 1/64`.
pub fn distinct(shape: &[usize], spacing: f32, seed: u64) -> Tensor {
    let keys = uniform(shape, 0.0, 1.0, seed).to_vec();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let half = keys.len() as f32 / 2.0;
    let mut values = vec![0.0; keys.len()];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = ((rank as f32 - half).floor() + 0.5) * spacing;
    }
    Tensor::from_vec(values, shape.to_vec()).expect("one value per element")
}

/// Every check, ops first.
pub fn cases() -> Vec<Case> {
    let mut cases = ops::cases();
    cases.extend(layers::cases());
    cases
}

struct Outcome {
    max_rel: f64,
    max_abs: f64,
    inputs: usize,
    passed: bool,
    error: Option<String>,
}

fn outcome(result: ventral_autograd::Result<GradcheckReport>) -> Outcome {
    match result {
        Ok(report) => Outcome {
            max_rel: report
                .inputs
                .iter()
                .map(|r| r.max_rel_error)
                .fold(0.0, f64::max),
            max_abs: report
                .inputs
                .iter()
                .map(|r| r.max_abs_error)
                .fold(0.0, f64::max),
            inputs: report.inputs.len(),
            passed: report.passed(),
            error: None,
        },
        Err(e) => Outcome {
            max_rel: f64::NAN,
            max_abs: f64::NAN,
            inputs: 0,
            passed: false,
            error: Some(e.to_string()),
        },
    }
}

/// Runs `ventral gradcheck`.
///
/// # Errors
/// An unknown `--op` name; any check that fails.
pub fn run(args: GradcheckArgs) -> Result<()> {
    let cases = cases();
    for name in &args.ops {
        if !cases.iter().any(|c| c.name == name) {
            let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
            bail!("unknown op `{name}`; valid names: {}", names.join(", "));
        }
    }
    let chosen: Vec<&Case> = cases
        .iter()
        .filter(|c| args.ops.is_empty() || args.ops.iter().any(|n| n == c.name))
        .collect();
    let options = GradcheckOptions::default();
    if !args.json {
        println!(
            "gradient check: central differences (5-point, h = {}), pass when |analytic - numeric| <= {} + {} |numeric|",
            options.eps, options.atol, options.rtol
        );
        println!(
            "{:<22} {:<6} {:>7} {:>14} {:>14}  result",
            "op", "kind", "inputs", "max rel error", "max abs error"
        );
    }
    let mut failed = Vec::new();
    for case in chosen.iter() {
        let o = outcome((case.run)());
        let kind = match case.kind {
            Kind::Op => "op",
            Kind::Layer => "layer",
        };
        if args.json {
            println!(
                "{}",
                json!({"op": case.name, "kind": kind, "inputs": o.inputs,
                       "max_rel_error": o.max_rel, "max_abs_error": o.max_abs,
                       "passed": o.passed, "error": o.error})
            );
        } else {
            let result = match (&o.error, o.passed) {
                (Some(e), _) => format!("ERROR: {e}"),
                (None, true) => "ok".to_string(),
                (None, false) => "FAIL".to_string(),
            };
            println!(
                "{:<22} {:<6} {:>7} {:>14.3e} {:>14.3e}  {result}",
                case.name, kind, o.inputs, o.max_rel, o.max_abs
            );
        }
        if !o.passed {
            failed.push(case.name);
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} gradient checks failed: {}",
            failed.len(),
            chosen.len(),
            failed.join(", ")
        );
    }
    if !args.json {
        println!("all {} gradient checks passed", chosen.len());
    }
    Ok(())
}
