//! [`gradcheck`]: compares the analytic gradient of a function of tensors with central
//! differences.
//!
//! See [`gradcheck`] for the method and the error analysis behind the default tolerances;
//! `cases.rs` holds the list of every op's checks.

mod cases;

use std::cmp::Ordering;
use std::fmt;

use crate::error::{Error, Result};
use crate::graph::no_grad;
use crate::tensor::Tensor;

pub use cases::{
    GradcheckCase, distinct_values, failing_cases, gradcheck_cases, uncaught_mutations,
};

/// Step, tolerances and seed of [`gradcheck`] (see its documentation for the error analysis
/// behind the defaults), and an optional deliberate error for mutation tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// The finite-difference step `h` (applied in f32; `2⁻⁷` by default, exactly
    /// representable).
    pub eps: f32,
    /// Absolute tolerance: the floor for an input whose gradient is (numerically) all zero.
    pub atol: f64,
    /// Relative tolerance, relative to the input's largest numeric derivative
    /// ([`InputReport::scale`]).
    pub rtol: f64,
    /// Seed of the random projection weights.
    pub seed: u64,
    /// Factor on the gradient that flows back into `f`'s output (through an identity op, so
    /// the backward pass itself is wrong, not the comparison). `1.0` for a real check;
    /// mutation tests set `1.05` to show that a backward 5 % off fails.
    pub backward_scale: f32,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        Self {
            eps: 1.0 / 128.0,
            atol: 1e-4,
            rtol: 1e-2,
            seed: 0x5eed,
            backward_scale: 1.0,
        }
    }
}

impl GradcheckOptions {
    /// These options with every analytic gradient scaled by `factor` (see
    /// [`GradcheckOptions::backward_scale`]).
    #[must_use]
    pub fn with_backward_scale(self, factor: f32) -> Self {
        Self {
            backward_scale: factor,
            ..self
        }
    }

    /// The largest error an element of an input whose largest numeric derivative is
    /// `scale` may have: `atol + rtol · scale`.
    pub fn allowed(&self, scale: f64) -> f64 {
        self.atol + self.rtol * scale
    }
}

/// How one input's analytic gradient compared with the numeric one.
#[derive(Debug, Clone, PartialEq)]
pub struct InputReport {
    /// The input's largest `|numeric|` derivative, the scale its tolerance is relative to.
    pub scale: f64,
    /// Largest `|analytic - numeric|` over the input's elements.
    pub max_abs_error: f64,
    /// `max_abs_error / scale` (0 when `scale` is 0).
    pub max_rel_error: f64,
    /// The element with the largest error.
    pub worst_index: usize,
    /// The analytic derivative at `worst_index`.
    pub worst_analytic: f64,
    /// The numeric derivative at `worst_index`.
    pub worst_numeric: f64,
    /// Whether every element was within `atol + rtol · scale`.
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

    /// The reports of several checks (of one op, say) as one, inputs in order.
    ///
    /// # Errors
    /// The first error among `reports`.
    pub fn join(reports: impl IntoIterator<Item = Result<GradcheckReport>>) -> Result<Self> {
        let mut inputs = Vec::new();
        for r in reports {
            inputs.extend(r?.inputs);
        }
        Ok(Self { inputs })
    }

    /// The inputs at which `mutated` — this same check run with
    /// [`GradcheckOptions::backward_scale`] `s ≠ 1`, given as `mutation` — passed although
    /// the error it introduces, `|s - 1| · scale` at the input's largest element, is more
    /// than twice `atol` (for `s = 1.05` and the default `atol`: every input with
    /// `scale > 4e-3`). Empty when the checker caught the wrong backward wherever `atol`
    /// does not hide it. The demand does not depend on `rtol`, so a checker whose `rtol` is
    /// too loose to see the error (`rtol >= |s - 1|`) is named here, not excused.
    pub fn uncaught(&self, mutated: &GradcheckReport, mutation: &GradcheckOptions) -> Vec<usize> {
        let off = f64::from((mutation.backward_scale - 1.0).abs());
        self.inputs
            .iter()
            .zip(&mutated.inputs)
            .enumerate()
            .filter(|(_, (good, bad))| off * good.scale > 2.0 * mutation.atol && bad.passed)
            .map(|(i, _)| i)
            .collect()
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "input {i}: {} largest |numeric| {:.3e}, max abs error {:.3e} ({:.3e} of it), \
                 worst element {} (analytic {:.6e}, numeric {:.6e})",
                if r.passed { "ok  " } else { "FAIL" },
                r.scale,
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

/// An identity whose backward multiplies the incoming gradient by `factor`: wrapped around
/// the output of an op, it makes that op's backward wrong by `factor - 1` for every input
/// (the vector-Jacobian product is linear in the output gradient). This is how
/// [`GradcheckOptions::backward_scale`] is applied.
///
/// # Errors
/// None in practice; the [`Tensor::from_op`] errors.
pub fn scale_gradient(x: &Tensor, factor: f32) -> Result<Tensor> {
    Tensor::from_op(
        "scale_gradient",
        x.to_vec(),
        x.shape().clone(),
        &[x],
        move |ctx| Ok(vec![Some(ctx.grad().iter().map(|g| g * factor).collect())]),
    )
}

/// Checks the gradient of `f` at `inputs` against finite differences.
///
/// `f` maps the inputs (as leaves requiring a gradient) to a tensor of any shape; every
/// input is checked. Constants `f` needs are captured by the closure instead.
///
/// # Method
/// Tensors compute in f32, so the difference quotient is taken from f32 evaluations,
/// combined in f64. The output `y` is projected onto fixed random weights `w` (random signs,
/// `|w| ∈ [0.5, 1)`, so no output is weighted by nearly 0),
/// `L = Σ w·y` (summed in f64): the analytic side is one `backward` of `L`, i.e. the
/// vector-Jacobian product the backward pass really computes, checked for every input
/// element. The numeric derivative of `L` by each input element is the five-point stencil
/// `D = (8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / 12h` (`f` is evaluated under
/// [`crate::no_grad`]).
///
/// An element of input `i` passes when `|analytic - numeric| <= atol + rtol · Gᵢ`, where
/// `Gᵢ` ([`InputReport::scale`]) is the largest `|numeric|` over input `i`. The tolerance is
/// relative to the input's largest derivative, not to each element's (PyTorch's rule): a
/// backward wrong by 5 % is wrong by `0.05 · Gᵢ` at the element where the derivative is
/// largest, which fails as soon as `Gᵢ > atol / (0.05 - rtol)`, so also for the small
/// gradients of a reduction (`mean_all` over 100 elements has `Gᵢ = |w| / 100 >= 0.005`;
/// PyTorch's rule with these tolerances let 5 % through wherever `|numeric| < 0.025`), while
/// elements with a tiny derivative are not held to a tolerance below the noise of the large
/// ones.
///
/// # Error analysis: why `h = 2⁻⁷`, `rtol = 1e-2`, `atol = 1e-4`
/// The error of `D` has three parts, each measured against `Gᵢ`.
///
/// - **Truncation**: `h⁴/30 · |L⁽⁵⁾|`, about `1.2e-10 · |L⁽⁵⁾|` at `h = 2⁻⁷`, far below
///   anything else for the smooth ops checked on inputs of size ~1 (even `1/x` at `x = 0.5`,
///   `|L⁽⁵⁾| = 120 / x⁶ ≈ 7.7e3`, gives 1e-6). A central difference (two points) would leave
///   `h²/6 · |L⁽³⁾| ≈ 1e-5 · |L⁽³⁾|`; the five-point stencil is what lets `h` be this large.
/// - **Rounding of the outputs**: each f32 output `y_k` carries a rounding error `δ · M_k`,
///   where `M_k` is the size of the terms it was computed from (`δ ≈ 6e-8` per rounding;
///   a few roundings for the kernels' transcendentals and for sums, which round once per
///   addition). The kernels are deterministic, so outputs that do not depend on `x_j` come
///   out bit-identical in all four evaluations and cancel exactly; the stencil's weights
///   (`8 + 8 + 1 + 1` over `12h`) turn the rest into `|ΔD| ≲ 1.5 · δ · T_j / h = 192 · δ · T_j`,
///   with `T_j = Σ |w_k| M_k` over the outputs `x_j` reaches. For an elementwise op `T_j`
///   is one output of size ~1 and `Gᵢ` ~1: `|ΔD| / Gᵢ ≈ 1e-5`. A reduction over `n`
///   elements shrinks `Gᵢ` (`1/n` for a mean) but not the rounding relative to it:
///   `|ΔD| / Gᵢ ≲ 192 · δ · Σ|x|`, at most about `2e-4` for `mean_all` over 20 values in
///   `[-2, 2)` and growing with `n` (measured, 5 seeds each: 8.7e-5 over 20 values,
///   5.5e-5 over 400, 5.6e-4 over 4,000: the kernels' sums round far less than this
///   bound). At the shapes the checks use (up to a few hundred elements per reduction)
///   that stays below `1e-3`, so `rtol = 1e-2` has a margin of 10 or more while staying 5
///   times below a 5 % error. Far larger reductions need f64 or a larger `rtol`.
/// - **Rounding of the input**: `x ± h` is rounded to f32, which changes the step by up to
///   `2⁻²⁴ · |x|`, a relative error of `|x| · 2⁻¹⁷ ≈ 8e-6 · |x|` in `D`.
///
/// `atol` only matters where `Gᵢ` is tiny. An input nothing depends on (a ReLU with only
/// negative inputs, the elements of a max-pool window that are not its maximum) gets a
/// numeric derivative of exactly 0, since the outputs do not change at all; but an input
/// whose derivative is nearly 0 while the outputs it reaches are of size ~1 (batch norm over
/// two values per channel, where `y = ±1` up to `ε`) keeps the absolute noise
/// `192 · δ · T_j`, measured up to 2e-5 there. `atol = 1e-4` covers that five times over,
/// and a backward off by 5 % still fails at every input with
/// `Gᵢ > atol / (0.05 - rtol) = 2.5e-3` (`mean_all` over up to 200 elements, since
/// `Gᵢ = |w| / n` and `|w| >= 0.5`).
///
/// Measured over the proptest checks of `tests/gradcheck_math.rs` and
/// `tests/gradcheck_layers.rs` at 256 cases each (21,350 inputs): where `Gᵢ > 0.01`, the
/// largest `|analytic - numeric| / Gᵢ` was 7.7e-4 (13 times below `rtol`); the largest
/// absolute error anywhere 1.0e-4 (at `Gᵢ = 17`); below `Gᵢ = 0.01` (batch norm over two
/// values per channel) the absolute error stayed under 1.4e-5.
///
/// PyTorch's double-precision defaults (`eps 1e-6`, `atol 1e-5`, `rtol 1e-3`) would be
/// swamped by f32 rounding: `6e-8 / 1e-6` is already 6 % noise. Inputs must sit at least
/// `2h` from any kink (`relu` at 0, ties in `max`), and away from near-singular points (a
/// batch-norm channel with almost no variance), as with any finite-difference check.
///
/// ```
/// use ventral_autograd::{gradcheck, GradcheckOptions, Tensor};
///
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3])?;
/// let options = GradcheckOptions::default();
/// let report = gradcheck(|t| t[0].tanh()?.mul(&t[0]), &[x.clone()], &options)?;
/// assert!(report.passed(), "{report}");
/// // The same check with a backward 5 % off fails.
/// let wrong = options.with_backward_scale(1.05);
/// let report = gradcheck(|t| t[0].tanh()?.mul(&t[0]), &[x], &wrong)?;
/// assert!(!report.passed(), "{report}");
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
    let mut y = f(&leaves)?;
    if options.backward_scale != 1.0 {
        y = scale_gradient(&y, options.backward_scale)?;
    }
    // Random signs, magnitudes in [0.5, 1): a scalar output (a loss) is never weighted by a
    // near-zero w that would shrink every gradient towards atol.
    let w: Vec<f32> = Tensor::rand_uniform(y.shape().clone(), -1.0, 1.0, options.seed)?
        .to_vec()
        .into_iter()
        .map(|u| (0.5 + 0.5 * u.abs()).copysign(u))
        .collect();
    let weights: Vec<f64> = w.iter().copied().map(f64::from).collect();
    let w = Tensor::from_vec(w, y.shape().clone())?;
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
        let mut numeric = Vec::with_capacity(values.len());
        for j in 0..values.len() {
            let x = values[j];
            let mut at = |dx: f32| -> Result<f64> {
                values[j] = x + dx;
                let l = project(i, &values);
                values[j] = x;
                l
            };
            let (p1, m1, p2, m2) = (at(h)?, at(-h)?, at(2.0 * h)?, at(-2.0 * h)?);
            numeric.push((8.0 * (p1 - m1) - (p2 - m2)) / (12.0 * f64::from(h)));
        }
        reports.push(compare(&analytic, &numeric, options));
    }
    Ok(GradcheckReport { inputs: reports })
}

/// One input's report: every element against `atol + rtol · max |numeric|`.
fn compare(analytic: &[f64], numeric: &[f64], options: &GradcheckOptions) -> InputReport {
    // A NaN numeric derivative makes the scale NaN and so fails every comparison below.
    let scale = numeric
        .iter()
        .map(|n| n.abs())
        .fold(0.0, |m: f64, v| if v.is_nan() { v } else { m.max(v) });
    let allowed = options.allowed(scale);
    let mut report = InputReport {
        scale,
        max_abs_error: 0.0,
        max_rel_error: 0.0,
        worst_index: 0,
        worst_analytic: analytic.first().copied().unwrap_or(0.0),
        worst_numeric: numeric.first().copied().unwrap_or(0.0),
        passed: true,
    };
    for (j, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let err = (a - n).abs();
        // Fails NaN errors and a NaN allowance too (no ordering).
        if !matches!(
            err.partial_cmp(&allowed),
            Some(Ordering::Less | Ordering::Equal)
        ) {
            report.passed = false;
        }
        if err > report.max_abs_error || (err.is_nan() && !report.max_abs_error.is_nan()) {
            report.max_abs_error = err;
            report.worst_index = j;
            report.worst_analytic = a;
            report.worst_numeric = n;
        }
    }
    report.max_rel_error = if scale > 0.0 {
        report.max_abs_error / scale
    } else {
        0.0
    };
    report
}
