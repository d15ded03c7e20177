//! Batch normalisation (`torch.nn.functional.batch_norm`), training and inference, forward and
//! backward.
//!
//! Per channel `c`, over the `m = N * inner` elements of that channel:
//! - training: `μ = Σx / m`, `σ² = Σ(x - μ)² / m` (biased), `r = 1 / sqrt(σ² + eps)`,
//!   `y = (x - μ) r w + b`; running statistics become `(1 - momentum) * running + momentum *
//!   stat` with the **unbiased** variance `Σ(x - μ)² / (m - 1)`, as in PyTorch;
//! - inference: the same map with the running mean and variance in place of `μ` and `σ²`.
//!
//! Statistics are accumulated in f64 (PyTorch's CPU accumulation type for f32), as one partial
//! sum per `(n, c)` plane combined in order of `n`; see the [module documentation](super).

use super::{Planes, check_channels, mismatch, sum_lanes, widen8};
use crate::conv::Epilogue;
use crate::elementwise::dispatch::with_isa;
use crate::elementwise::relu_value;
use crate::error::Result;
use crate::isa::Isa;

/// Hyper-parameters of batch normalisation. `Default` is PyTorch's: `eps = 1e-5`,
/// `momentum = 0.1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormParams {
    /// Added to the variance before the square root, for stability.
    pub eps: f32,
    /// Weight of the current batch in the running statistics' update.
    pub momentum: f32,
}

impl BatchNormParams {
    /// Parameters with the given `eps` and `momentum`.
    pub fn new(eps: f32, momentum: f32) -> Self {
        Self { eps, momentum }
    }
}

impl Default for BatchNormParams {
    fn default() -> Self {
        Self::new(1e-5, 0.1)
    }
}

/// The running mean and variance of a batch-norm layer, updated in place by
/// [`batch_norm_train`]; each holds one value per channel.
#[derive(Debug)]
pub struct RunningStats<'a> {
    /// Running mean per channel.
    pub mean: &'a mut [f32],
    /// Running (unbiased) variance per channel.
    pub var: &'a mut [f32],
}

/// What [`batch_norm_train`] produces: the output and the statistics its backward needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormTrainOutput {
    /// Normalised output, same shape as the input.
    pub y: Vec<f32>,
    /// Batch mean per channel.
    pub save_mean: Vec<f32>,
    /// `1 / sqrt(biased batch variance + eps)` per channel.
    pub save_invstd: Vec<f32>,
}

/// Gradients of a batch normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormGrads {
    /// Gradient with respect to the input.
    pub dx: Vec<f32>,
    /// Gradient with respect to the affine weight, per channel (computed even without
    /// affine parameters, as the gradient of an implicit weight of 1).
    pub dweight: Vec<f32>,
    /// Gradient with respect to the affine bias, per channel: `Σ dy`.
    pub dbias: Vec<f32>,
}

/// Training-mode batch normalisation of a `[N, C, *]` tensor (rank ≥ 2).
///
/// Normalises each channel with its batch mean and biased variance, applies the optional
/// affine `weight` and `bias` (1 and 0 when absent), and, when `running` is given, updates the
/// running statistics in place with `momentum` and the unbiased variance, exactly as
/// `torch.nn.BatchNorm2d` does in training mode.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, the rank is
/// below 2, a channel has fewer than 2 values (`N * inner < 2`, where the unbiased variance
/// is undefined, as PyTorch refuses), or `weight`, `bias` or the running statistics do not
/// have `C` elements.
pub fn batch_norm_train(
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    running: Option<RunningStats<'_>>,
    params: BatchNormParams,
) -> Result<BatchNormTrainOutput> {
    const OP: &str = "batch_norm_train";
    let isa = Isa::detect();
    let (pl, mean, invstd) = train_stats(OP, isa, x, shape, (weight, bias), running, params)?;
    let y = affine_map(
        pl,
        isa,
        x,
        (weight, bias),
        (&mean, &invstd),
        Epilogue::Identity,
    );
    Ok(BatchNormTrainOutput {
        y,
        save_mean: mean.iter().map(|&v| v as f32).collect(),
        save_invstd: invstd.iter().map(|&v| v as f32).collect(),
    })
}

/// Validates a training-mode call and computes the batch statistics: the planes, the mean
/// and `1 / sqrt(biased variance + eps)` per channel (f64), updating `running` in place.
/// Shared by [`batch_norm_train`] and the fused [`super::batch_norm_relu_train`], so both
/// normalise with the same bits.
pub(super) fn train_stats(
    op: &'static str,
    isa: Isa,
    x: &[f32],
    shape: &[usize],
    (weight, bias): (Option<&[f32]>, Option<&[f32]>),
    running: Option<RunningStats<'_>>,
    params: BatchNormParams,
) -> Result<(Planes, Vec<f64>, Vec<f64>)> {
    let pl = Planes::new(op, shape, "x", x.len())?;
    check_affine(op, pl.c, weight, bias)?;
    if let Some(r) = &running {
        check_channels(op, "running mean", r.mean.len(), pl.c)?;
        check_channels(op, "running var", r.var.len(), pl.c)?;
    }
    let count = pl.n * pl.inner;
    if count < 2 && pl.c > 0 {
        return Err(mismatch(
            op,
            format!("expected more than 1 value per channel when training, got input {shape:?}"),
        ));
    }
    let m = count as f64;

    // Pass 1: the mean, from per-plane sums.
    let sums = pl.map(|p| {
        let xp = pl.plane(x, p);
        with_isa(
            isa,
            #[inline(always)]
            || sum_lanes(xp.len(), |base| [widen8(xp, base)], |i| [f64::from(xp[i])]),
        )
    });
    let mean: Vec<f64> = pl.per_channel(&sums).iter().map(|s| s[0] / m).collect();
    // Pass 2: the variance, from per-plane sums of squared deviations (two passes avoid the
    // cancellation of Σx² - mΜ²).
    let sq = pl.map(|p| {
        let (mu, xp) = (mean[p % pl.c], pl.plane(x, p));
        with_isa(
            isa,
            #[inline(always)]
            || {
                sum_lanes(
                    xp.len(),
                    |base| [widen8(xp, base).map(|v| (v - mu) * (v - mu))],
                    |i| {
                        let d = f64::from(xp[i]) - mu;
                        [d * d]
                    },
                )
            },
        )
    });
    let var_sum: Vec<f64> = pl.per_channel(&sq).iter().map(|s| s[0]).collect();
    let invstd: Vec<f64> = var_sum
        .iter()
        .map(|&v| 1.0 / (v / m + f64::from(params.eps)).sqrt())
        .collect();

    if let Some(r) = running {
        let mom = f64::from(params.momentum);
        for c in 0..pl.c {
            let unbiased = var_sum[c] / (m - 1.0);
            r.mean[c] = (mom * mean[c] + (1.0 - mom) * f64::from(r.mean[c])) as f32;
            r.var[c] = (mom * unbiased + (1.0 - mom) * f64::from(r.var[c])) as f32;
        }
    }
    Ok((pl, mean, invstd))
}

/// Inference-mode batch normalisation: `y = (x - running_mean) / sqrt(running_var + eps) * w
/// + b` per channel, with the optional affine `weight` and `bias` (1 and 0 when absent).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, the rank is
/// below 2, or `weight`, `bias` or the running statistics do not have `C` elements.
pub fn batch_norm_eval(
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Result<Vec<f32>> {
    const OP: &str = "batch_norm_eval";
    let pl = Planes::new(OP, shape, "x", x.len())?;
    check_affine(OP, pl.c, weight, bias)?;
    let (mean, invstd) = running_invstd(OP, pl.c, running_mean, running_var, eps)?;
    let isa = Isa::detect();
    Ok(affine_map(
        pl,
        isa,
        x,
        (weight, bias),
        (&mean, &invstd),
        Epilogue::Identity,
    ))
}

/// Gradient of [`batch_norm_train`] (the batch statistics depend on `x`):
///
/// ```text
/// dbias   = Σ dy                      dweight = r Σ (x - μ) dy
/// dx      = w r (dy - dbias / m - (x - μ) r² Σ (x - μ) dy / m)
/// ```
///
/// per channel, with `μ = save_mean`, `r = save_invstd` from the forward pass and `m = N *
/// inner`; PyTorch's `batch_norm_backward` formula.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, `dy` differs
/// from `x` in length, or `weight`, `save_mean` or `save_invstd` do not have `C` elements.
pub fn batch_norm_backward_train(
    dy: &[f32],
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    save_mean: &[f32],
    save_invstd: &[f32],
) -> Result<BatchNormGrads> {
    backward_train(
        "batch_norm_backward_train",
        Isa::detect(),
        (dy, None),
        x,
        shape,
        weight,
        (save_mean, save_invstd),
    )
}

/// The training backward of [`batch_norm_backward_train`] with an optional ReLU `mask` in
/// front: where given, `dy` counts only where `mask > 0` (the fused
/// [`super::batch_norm_relu_backward_train`] passes the ReLU's output), exactly as if
/// [`crate::elementwise::relu_backward`] had run first.
pub(super) fn backward_train(
    op: &'static str,
    isa: Isa,
    (dy, mask): (&[f32], Option<&[f32]>),
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    (save_mean, save_invstd): (&[f32], &[f32]),
) -> Result<BatchNormGrads> {
    let pl = Planes::new(op, shape, "x", x.len())?;
    Planes::new(op, shape, "dy", dy.len())?;
    if let Some(mask) = mask {
        Planes::new(op, shape, "y", mask.len())?;
    }
    check_affine(op, pl.c, weight, None)?;
    check_channels(op, "save_mean", save_mean.len(), pl.c)?;
    check_channels(op, "save_invstd", save_invstd.len(), pl.c)?;
    let m = (pl.n * pl.inner) as f64;
    let mean: Vec<f64> = save_mean.iter().map(|&v| f64::from(v)).collect();
    let invstd: Vec<f64> = save_invstd.iter().map(|&v| f64::from(v)).collect();
    let (sum_dy, dot) = grad_sums(pl, isa, (dy, mask), x, &mean);

    // dx = w r (dy - dbias / m - (x - μ) r² dot / m), constants folded per channel in f64;
    // `x - μ` stays explicit so a large mean with a small spread does not cancel.
    let coef: Vec<[f32; 4]> = (0..pl.c)
        .map(|c| {
            let w = weight.map_or(1.0, |w| f64::from(w[c]));
            let (gmean, proj) = if m > 0.0 {
                (sum_dy[c] / m, dot[c] * invstd[c] * invstd[c] / m)
            } else {
                (0.0, 0.0)
            };
            [w * invstd[c], gmean, mean[c], proj].map(|v| v as f32)
        })
        .collect();
    let dx = map_with_dy(pl, isa, (dy, mask), x, &coef);
    Ok(BatchNormGrads {
        dx,
        dweight: (0..pl.c).map(|c| (dot[c] * invstd[c]) as f32).collect(),
        dbias: sum_dy.iter().map(|&v| v as f32).collect(),
    })
}

/// Gradient of [`batch_norm_eval`], a fixed per-channel affine map of `x`:
/// `dx = dy · w r`, `dweight = r Σ (x - running_mean) dy`, `dbias = Σ dy`, with
/// `r = 1 / sqrt(running_var + eps)`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, `dy` differs
/// from `x` in length, or `weight` or the running statistics do not have `C` elements.
pub fn batch_norm_backward_eval(
    dy: &[f32],
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Result<BatchNormGrads> {
    const OP: &str = "batch_norm_backward_eval";
    let pl = Planes::new(OP, shape, "x", x.len())?;
    Planes::new(OP, shape, "dy", dy.len())?;
    check_affine(OP, pl.c, weight, None)?;
    let (mean, invstd) = running_invstd(OP, pl.c, running_mean, running_var, eps)?;
    let isa = Isa::detect();
    let (sum_dy, dot) = grad_sums(pl, isa, (dy, None), x, &mean);
    let coef: Vec<[f32; 4]> = (0..pl.c)
        .map(|c| {
            let w = weight.map_or(1.0, |w| f64::from(w[c]));
            [(w * invstd[c]) as f32, 0.0, 0.0, 0.0]
        })
        .collect();
    let dx = map_with_dy(pl, isa, (dy, None), x, &coef);
    Ok(BatchNormGrads {
        dx,
        dweight: (0..pl.c).map(|c| (dot[c] * invstd[c]) as f32).collect(),
        dbias: sum_dy.iter().map(|&v| v as f32).collect(),
    })
}

/// Checks the optional affine parameters have one value per channel.
fn check_affine(
    op: &'static str,
    c: usize,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
) -> Result<()> {
    if let Some(w) = weight {
        check_channels(op, "weight", w.len(), c)?;
    }
    if let Some(b) = bias {
        check_channels(op, "bias", b.len(), c)?;
    }
    Ok(())
}

/// Running mean and `1 / sqrt(running_var + eps)` per channel, in f64, after checking their
/// lengths.
fn running_invstd(
    op: &'static str,
    c: usize,
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Result<(Vec<f64>, Vec<f64>)> {
    check_channels(op, "running mean", running_mean.len(), c)?;
    check_channels(op, "running var", running_var.len(), c)?;
    let mean = running_mean.iter().map(|&v| f64::from(v)).collect();
    let invstd = running_var
        .iter()
        .map(|&v| 1.0 / (f64::from(v) + f64::from(eps)).sqrt())
        .collect();
    Ok((mean, invstd))
}

/// `y = epilogue((x - μ) · r w + b)` per channel. `x - μ` is formed first (PyTorch folds `μ`
/// into the shift, which cancels badly for a large mean with a small spread).
pub(super) fn affine_map(
    pl: Planes,
    isa: Isa,
    x: &[f32],
    (weight, bias): (Option<&[f32]>, Option<&[f32]>),
    (mean, invstd): (&[f64], &[f64]),
    epilogue: Epilogue,
) -> Vec<f32> {
    let coef: Vec<[f32; 3]> = (0..pl.c)
        .map(|c| {
            let w = weight.map_or(1.0, |w| f64::from(w[c]));
            let b = bias.map_or(0.0, |b| f64::from(b[c]));
            [mean[c], invstd[c] * w, b].map(|v| v as f32)
        })
        .collect();
    pl.fill_new(|p, yp| {
        let [mean, scale, shift] = coef[p % pl.c];
        let xp = pl.plane(x, p);
        // Every element of the plane is written (fill_new's contract).
        assert_eq!(yp.len(), xp.len());
        // One loop per epilogue, the test outside it, so each vectorises on its own.
        match epilogue {
            Epilogue::Identity => with_isa(
                isa,
                #[inline(always)]
                || {
                    for (o, &v) in yp.iter_mut().zip(xp) {
                        o.write((v - mean) * scale + shift);
                    }
                },
            ),
            Epilogue::Relu => with_isa(
                isa,
                #[inline(always)]
                || {
                    for (o, &v) in yp.iter_mut().zip(xp) {
                        o.write(relu_value((v - mean) * scale + shift));
                    }
                },
            ),
        }
    })
}

/// The gradient an element passes on: `dy`, or 0 where the ReLU mask (its output) is not
/// positive; the same value [`crate::elementwise::relu_backward`] produces.
#[inline(always)]
fn masked(dy: f32, mask: f32) -> f32 {
    if mask > 0.0 { dy } else { 0.0 }
}

/// Per-channel `Σ g` and `Σ (x - mean) g` with `g` = `dy`, masked by the ReLU output when
/// given, from per-plane f64 partials added in order.
fn grad_sums(
    pl: Planes,
    isa: Isa,
    (dy, mask): (&[f32], Option<&[f32]>),
    x: &[f32],
    mean: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let partials = pl.map(|p| {
        let (mu, gp, xp) = (mean[p % pl.c], pl.plane(dy, p), pl.plane(x, p));
        match mask {
            None => with_isa(
                isa,
                #[inline(always)]
                || {
                    sum_lanes(
                        xp.len(),
                        |base| {
                            let (g, v) = (widen8(gp, base), widen8(xp, base));
                            [g, std::array::from_fn(|l| (v[l] - mu) * g[l])]
                        },
                        |i| {
                            let g = f64::from(gp[i]);
                            [g, (f64::from(xp[i]) - mu) * g]
                        },
                    )
                },
            ),
            Some(mask) => {
                let yp = pl.plane(mask, p);
                with_isa(
                    isa,
                    #[inline(always)]
                    || {
                        sum_lanes(
                            xp.len(),
                            |base| {
                                let (d, y): (&[f32; 8], &[f32; 8]) = (
                                    gp[base..base + 8].try_into().expect("8 floats"),
                                    yp[base..base + 8].try_into().expect("8 floats"),
                                );
                                let g: [f64; 8] =
                                    std::array::from_fn(|l| f64::from(masked(d[l], y[l])));
                                let v = widen8(xp, base);
                                [g, std::array::from_fn(|l| (v[l] - mu) * g[l])]
                            },
                            |i| {
                                let g = f64::from(masked(gp[i], yp[i]));
                                [g, (f64::from(xp[i]) - mu) * g]
                            },
                        )
                    },
                )
            }
        }
    });
    let totals = pl.per_channel(&partials);
    (
        totals.iter().map(|t| t[0]).collect(),
        totals.iter().map(|t| t[1]).collect(),
    )
}

/// `dx = g · (dy - gmean - (x - mean) · proj)` with `[g, gmean, mean, proj]` per channel and
/// `dy` masked by the ReLU output when given.
fn map_with_dy(
    pl: Planes,
    isa: Isa,
    (dy, mask): (&[f32], Option<&[f32]>),
    x: &[f32],
    coef: &[[f32; 4]],
) -> Vec<f32> {
    pl.fill_new(|p, out| {
        let [g, gmean, mean, proj] = coef[p % pl.c];
        let (gp, xp) = (pl.plane(dy, p), pl.plane(x, p));
        // Every element of the plane is written (fill_new's contract): dy, x and the mask
        // planes are as long as it.
        assert!(out.len() == gp.len() && out.len() == xp.len());
        match mask {
            None => with_isa(
                isa,
                #[inline(always)]
                || {
                    for ((o, &d), &v) in out.iter_mut().zip(gp).zip(xp) {
                        o.write(g * (d - gmean - (v - mean) * proj));
                    }
                },
            ),
            Some(mask) => {
                let yp = pl.plane(mask, p);
                assert_eq!(out.len(), yp.len());
                with_isa(
                    isa,
                    #[inline(always)]
                    || {
                        for (((o, &d), &v), &y) in out.iter_mut().zip(gp).zip(xp).zip(yp) {
                            o.write(g * (masked(d, y) - gmean - (v - mean) * proj));
                        }
                    },
                )
            }
        }
    })
}
