//! `ventral gradcheck`: every differentiable op and every layer type, gradient-checked on
//! small random inputs against central differences (`ventral_autograd::gradcheck` with its
//! default, f32-calibrated tolerances), as a table of the largest errors per op.
//!
//! The checks are the libraries' own lists, [`ventral_autograd::gradcheck_cases`] and
//! [`ventral_nn::layers::gradcheck_cases`], which those crates' tests run too and which fail
//! when an op or layer has no case; this command only iterates them.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use ventral_autograd::{GradcheckOptions, GradcheckReport, gradcheck_cases};

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
    /// Multiply every analytic gradient by this factor (through an identity op on the checked
    /// function's output), e.g. 1.05 to see that a backward 5 % off fails every check.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    backward_scale: f32,
}

/// What a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A differentiable tensor op of `ventral-autograd`.
    Op,
    /// A layer of `ventral-nn` (input and every parameter).
    Layer,
}

/// One named check: runs one or more gradient checks with the given options and returns
/// their reports together.
pub struct Case {
    /// The op's method name, or the layer's type name.
    pub name: &'static str,
    /// Op or layer.
    pub kind: Kind,
    /// Runs the check.
    pub run: fn(&GradcheckOptions) -> ventral_autograd::Result<GradcheckReport>,
}

/// Every check: the ops' list of `ventral-autograd`, then the layers' list of `ventral-nn`.
pub fn cases() -> Vec<Case> {
    let ops = gradcheck_cases().into_iter().map(|c| (c, Kind::Op));
    let layers = ventral_nn::layers::gradcheck_cases()
        .into_iter()
        .map(|c| (c, Kind::Layer));
    ops.chain(layers)
        .map(|(c, kind)| Case {
            name: c.name,
            kind,
            run: c.run,
        })
        .collect()
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
    let options = GradcheckOptions::default().with_backward_scale(args.backward_scale);
    if !args.json {
        println!(
            "gradient check: central differences (5-point, h = {}), pass when |analytic - numeric| <= {} + {} max|numeric| (per input)",
            options.eps, options.atol, options.rtol
        );
        if options.backward_scale != 1.0 {
            println!(
                "every analytic gradient deliberately scaled by {}: the checks should fail",
                options.backward_scale
            );
        }
        println!(
            "{:<22} {:<6} {:>7} {:>14} {:>14}  result",
            "op", "kind", "inputs", "max rel error", "max abs error"
        );
    }
    let mut failed = Vec::new();
    for case in chosen.iter() {
        let o = outcome((case.run)(&options));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_scale_makes_the_command_fail() {
        let args = |backward_scale| GradcheckArgs {
            ops: vec!["relu".into(), "Linear".into()],
            json: true,
            backward_scale,
        };
        run(args(1.0)).unwrap();
        let e = run(args(1.05)).unwrap_err().to_string();
        assert_eq!(e, "2 of 2 gradient checks failed: relu, Linear");
    }

    #[test]
    fn the_op_checks_are_autograds_list() {
        let ops: Vec<&str> = cases()
            .iter()
            .filter(|c| c.kind == Kind::Op)
            .map(|c| c.name)
            .collect();
        let listed: Vec<&str> = gradcheck_cases().iter().map(|c| c.name).collect();
        assert_eq!(ops, listed);
    }

    #[test]
    fn the_layer_checks_are_nns_list() {
        let layers: Vec<&str> = cases()
            .iter()
            .filter(|c| c.kind == Kind::Layer)
            .map(|c| c.name)
            .collect();
        let listed: Vec<&str> = ventral_nn::layers::gradcheck_cases()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(layers, listed);
    }
}
