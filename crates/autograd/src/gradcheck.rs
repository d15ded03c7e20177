//! [`gradcheck`]: compares the analytic gradient of a function of tensors with central
//! differences.
//!
//! See [`gradcheck`] for the method and the error analysis behind the default tolerances.

use std::fmt;

use crate::error::{Error, Result};
use crate::graph::no_grad;
use crate::tensor::Tensor;

/// Step and tolerances of [`gradcheck`]; see its documentation for the
/// defaults' error analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// The finite-difference step `h` (applied in f32; `2⁻⁷` by default, exactly
    /// representable).
    pub eps: f32,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (relative to the numeric derivative).
    pub rtol: f64,
    /// Seed of the random projection weights.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        Self {
            eps: 1.0 / 128.0,
            atol: 1e-3,
            rtol: 1e-2,
            seed: 0x5eed,
        }
    }
}

/// How one input's analytic gradient compared with the numeric one.
#[derive(Debug, Clone, PartialEq)]
pub struct InputReport {
    /// Largest `|analytic - numeric|` over the input's elements.
    pub max_abs_error: f64,
    /// Largest `|analytic - numeric| / |numeric|` (elements with a numeric derivative below
    /// `atol` are left out, where the relative error means nothing).
    pub max_rel_error: f64,
    /// The element that came closest to (or went furthest past) the tolerance.
    pub worst_index: usize,
    /// The analytic derivative at `worst_index`.
    pub worst_analytic: f64,
    /// The numeric derivative at `worst_index`.
    pub worst_numeric: f64,
    /// Whether every element was within `atol + rtol · |numeric|`.
    pub passed: bool,
}

/// The result of [`gradcheck`]: one report per input.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// One entry per input, in order.
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    /// Whether every input passed.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "input {i}: {} max abs error {:.3e}, max rel error {:.3e}, worst element {} \
                 (analytic {:.6e}, numeric {:.6e})",
                if r.passed { "ok  " } else { "FAIL" },
                r.max_abs_error,
                r.max_rel_error,
                r.worst_index,
                r.worst_analytic,
                r.worst_numeric
            )?;
        }
        Ok(())
    }
}

/// Checks the gradient of `f` at `inputs` against finite differences.
///
/// `f` maps the inputs (as leaves requiring a gradient) to a tensor of any shape; every
/// input is checked. Constants `f` needs are captured by the closure instead.
///
/// # Method, and why these tolerances
/// Tensors compute in f32, so the difference quotient is taken from f32 evaluations,
/// combined in f64. The output `y` is projected onto fixed random weights `w ∈ [-1, 1)`,
/// `L = Σ w·y` (summed in f64): the analytic side is one `backward` of `L`, i.e. the
/// vector-Jacobian product the backward pass really computes, checked for every input
/// element. The numeric derivative of `L` by each input element is the five-point stencil
/// `(8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / 12h` (`f` is evaluated under
/// [`crate::no_grad`]), whose error has two parts:
///
/// - truncation, `h⁴/30 · |L⁽⁵⁾|`: about `1e-10 · |L⁽⁵⁾|` at the default `h = 2⁻⁷`;
/// - rounding, about `1.5 · δ · S / h`, where `S = Σ |w y|` and `δ` is the relative error of
///   an f32 output (≈ 6e-8 for one rounding, ≤ 1e-6 for the kernels' transcendentals): for
///   the small shapes gradient checks use (`S ≲ 50`, typical `δ ≈ 1e-7`), ≈ `1e-4`
///   (measured: 5e-5 to 1.2e-4 on 2x3x7x8 convolutions).
///
/// The defaults `atol = 1e-3`, `rtol = 1e-2` (an element passes when
/// `|analytic - numeric| <= atol + rtol · |numeric|`, PyTorch's rule) leave a margin of ~10
/// over that budget, while a backward that is wrong by 5 % on gradients of size ≳ 0.1 still
/// fails. PyTorch's double-precision defaults (`eps 1e-6`, `atol 1e-5`, `rtol 1e-3`) would
/// be swamped by f32 rounding: `6e-8 / 1e-6` is already 6 % noise. Inputs must sit at least
/// `2h` from any kink (`relu` at 0, ties in `max`), and away from near-singular points (a
/// batch-norm channel with almost no variance), as with any finite-difference check.
///
/// ```
/// use ventral_autograd::{gradcheck, GradcheckOptions, Tensor};
///
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3])?;
/// let report = gradcheck(|t| t[0].tanh()?.mul(&t[0]), &[x], &GradcheckOptions::default())?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
///
/// # Errors
/// Any error of `f` or of its backward; [`Error::InvalidArgument`] for a non-positive or
/// non-finite `eps`.
pub fn gradcheck<F>(f: F, inputs: &[Tensor], options: &GradcheckOptions) -> Result<GradcheckReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let h = options.eps;
    if !(h > 0.0 && h.is_finite()) {
        return Err(Error::invalid(
            "gradcheck",
            format!("eps must be positive, got {h}"),
        ));
    }
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.detach().with_grad()).collect();
    let y = f(&leaves)?;
    let w = Tensor::rand_uniform(y.shape().clone(), -1.0, 1.0, options.seed)?;
    let weights: Vec<f64> = w.to_vec().into_iter().map(f64::from).collect();
    let loss = y.mul(&w)?.sum_all()?;
    let grads = if loss.requires_grad() {
        Some(loss.backward()?)
    } else {
        None
    };
    drop((y, loss));

    // L = Σ w·y in f64, with input `which` replaced by `values`.
    let project = |which: usize, values: &[f32]| -> Result<f64> {
        let mut args: Vec<Tensor> = inputs.iter().map(Tensor::detach).collect();
        args[which] = Tensor::from_slice(values, inputs[which].shape().clone())?;
        let out = no_grad(|| f(&args))?;
        Ok(out
            .to_vec()
            .iter()
            .zip(&weights)
            .map(|(&y, &w)| f64::from(y) * w)
            .sum())
    };

    let mut reports = Vec::with_capacity(inputs.len());
    for (i, leaf) in leaves.iter().enumerate() {
        let analytic: Vec<f64> = match grads.as_ref().and_then(|g| g.get(leaf)) {
            Some(g) => g.to_vec().into_iter().map(f64::from).collect(),
            None => vec![0.0; leaf.numel()],
        };
        let mut values = leaf.to_vec();
        let mut report = InputReport {
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst_index: 0,
            worst_analytic: 0.0,
            worst_numeric: 0.0,
            passed: true,
        };
        let mut worst_ratio = -1.0;
        for j in 0..values.len() {
            let x = values[j];
            let mut at = |dx: f32| -> Result<f64> {
                values[j] = x + dx;
                let l = project(i, &values);
                values[j] = x;
                l
            };
            let (p1, m1, p2, m2) = (at(h)?, at(-h)?, at(2.0 * h)?, at(-2.0 * h)?);
            let numeric = (8.0 * (p1 - m1) - (p2 - m2)) / (12.0 * f64::from(h));
            let a = analytic[j];
            let err = (a - numeric).abs();
            let allowed = options.atol + options.rtol * numeric.abs();
            report.max_abs_error = report.max_abs_error.max(err);
            if numeric.abs() >= options.atol {
                report.max_rel_error = report.max_rel_error.max(err / numeric.abs());
            }
            if err > allowed || !err.is_finite() {
                report.passed = false;
            }
            let ratio = if err.is_finite() {
                err / allowed
            } else {
                f64::INFINITY
            };
            if ratio > worst_ratio {
                worst_ratio = ratio;
                report.worst_index = j;
                report.worst_analytic = a;
                report.worst_numeric = numeric;
            }
        }
        reports.push(report);
    }
    Ok(GradcheckReport { inputs: reports })
}
