//! Losses, composed from other ops (so their gradients need no code of their own):
//! [`cross_entropy`] (with label smoothing), [`nll_loss`], [`mse_loss`] and the multiclass
//! hinge loss [`multi_margin_loss`]. Each averages over the batch, PyTorch's default
//! `reduction = "mean"`.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Checks `[N, C]` scores against `N` class indices below `C`, naming `op`.
fn check_targets(op: &'static str, scores: &Tensor, targets: &[usize]) -> Result<(usize, usize)> {
    let &[n, c] = scores.dims() else {
        return Err(Error::invalid(
            op,
            format!("needs [N, C] scores, got shape {}", scores.shape()),
        ));
    };
    if targets.len() != n {
        return Err(Error::invalid(
            op,
            format!(
                "{} targets for scores of shape {}",
                targets.len(),
                scores.shape()
            ),
        ));
    }
    if let Some(&bad) = targets.iter().find(|&&t| t >= c) {
        return Err(Error::invalid(
            op,
            format!(
                "target class {bad} is out of range for scores of shape {}",
                scores.shape()
            ),
        ));
    }
    Ok((n, c))
}

/// Cross-entropy of `[N, C]` logits against class indices, averaged over the batch:
/// `-(1 - ε) log p[y] - ε/C Σ_c log p[c]` with `p = softmax(logits)` and label smoothing
/// `ε` (0 for plain cross-entropy), as `torch.nn.functional.cross_entropy`.
///
/// ```
/// use ventral_autograd::{cross_entropy, Tensor};
///
/// // Uniform logits over 4 classes: the loss is ln 4 and d/dlogit = (p - onehot) / N.
/// let logits = Tensor::zeros([1, 4])?.with_grad();
/// let loss = cross_entropy(&logits, &[2], 0.0)?;
/// assert!((loss.item()? - 4f32.ln()).abs() < 1e-6);
/// let g = loss.backward()?;
/// assert_eq!(g.get(&logits).unwrap().to_vec(), [0.25, 0.25, -0.75, 0.25]);
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `logits` is not `[N, C]`, there are not `N` targets,
/// a target is not below `C`, or `label_smoothing` is outside [0, 1].
pub fn cross_entropy(logits: &Tensor, targets: &[usize], label_smoothing: f32) -> Result<Tensor> {
    let (n, _) = check_targets("cross_entropy", logits, targets)?;
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::invalid(
            "cross_entropy",
            format!("label smoothing must be in [0, 1], got {label_smoothing}"),
        ));
    }
    let logp = logits.log_softmax(1)?;
    let picked = logp.gather(1, targets, [n, 1])?.mean_all()?;
    if label_smoothing == 0.0 {
        return picked.neg();
    }
    // mean over the batch of -(1-ε) logp[y] - ε mean_c logp[c].
    let uniform = logp.mean_all()?;
    picked
        .mul_scalar(1.0 - label_smoothing)?
        .add(&uniform.mul_scalar(label_smoothing)?)?
        .neg()
}

/// Negative log-likelihood of `[N, C]` log-probabilities: `-mean_i logp[i, y_i]`.
///
/// # Errors
/// As [`cross_entropy`].
pub fn nll_loss(log_probs: &Tensor, targets: &[usize]) -> Result<Tensor> {
    let (n, _) = check_targets("nll_loss", log_probs, targets)?;
    log_probs.gather(1, targets, [n, 1])?.mean_all()?.neg()
}

/// Mean squared error, `mean((prediction - target)²)`; shapes must be equal.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] naming both shapes if they differ.
pub fn mse_loss(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    if prediction.shape() != target.shape() {
        return Err(Error::mismatch(
            "mse_loss",
            prediction.shape(),
            target.shape(),
            "must have the same shape",
        ));
    }
    prediction.sub(target)?.pow(2.0)?.mean_all()
}

/// How [`multi_margin_loss`] scales each sample's hinge sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarginNormalization {
    /// The lecture's SVM loss: `L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + 1)`.
    #[default]
    Sum,
    /// PyTorch's `MultiMarginLoss`: the same sum divided by the number of classes `C`.
    ByClasses,
}

/// The multiclass hinge (SVM) loss of `[N, C]` scores with margin 1, averaged over the batch:
/// `L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + 1)`, optionally divided by `C`.
///
/// Composed as `Σ_j relu(s_j - s_y + 1) - 1`: the `j = y` term is always exactly 1 and its
/// gradient `(ds_y - ds_y)` is 0, so it needs no mask.
///
/// ```
/// use ventral_autograd::{multi_margin_loss, MarginNormalization, Tensor};
///
/// // The lecture's cat image: scores cat 3.2, car 5.1, frog -1.7, label cat:
/// // max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1) = 2.9 + 0.
/// let s = Tensor::from_vec(vec![3.2, 5.1, -1.7], [1, 3])?;
/// let loss = multi_margin_loss(&s, &[0], MarginNormalization::Sum)?;
/// assert!((loss.item()? - 2.9).abs() < 1e-5);
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
///
/// # Errors
/// As [`cross_entropy`].
pub fn multi_margin_loss(
    scores: &Tensor,
    targets: &[usize],
    normalization: MarginNormalization,
) -> Result<Tensor> {
    let (n, c) = check_targets("multi_margin_loss", scores, targets)?;
    let correct = scores.gather(1, targets, [n, 1])?;
    let per_sample = scores
        .sub(&correct)?
        .add_scalar(1.0)?
        .relu()?
        .sum(&[1], false)?
        .sub_scalar(1.0)?;
    let loss = per_sample.mean_all()?;
    match normalization {
        MarginNormalization::Sum => Ok(loss),
        MarginNormalization::ByClasses => loss.div_scalar(c as f32),
    }
}
