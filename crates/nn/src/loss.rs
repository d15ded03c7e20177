//! Losses, as functions of logits or predictions and targets.
//!
//! The delta rule's squared error `E = ½ Σ (t − o)²` is [`mse_loss`] up to a factor: MSE
//! averages over the `n` elements, so `E = (n / 2) · mse_loss(o, t)`.
//!
//! ```
//! use ventral_nn::{Tensor, loss::mse_loss};
//!
//! let o = Tensor::from_vec(vec![1.0, 2.0], [2])?;
//! let t = Tensor::from_vec(vec![0.0, 4.0], [2])?;
//! // E = ½ ((0 − 1)² + (4 − 2)²) = 2.5; MSE = (1 + 4) / 2 = 2.5; n / 2 = 1.
//! assert_eq!(mse_loss(&o, &t)?.item()?, 2.5);
//! # Ok::<(), ventral_nn::Error>(())
//! ```

use ventral_autograd::Tensor;

use crate::error::Result;

pub use ventral_autograd::MarginNormalization;

/// Cross-entropy from logits `[N, C]` and class indices, averaged over the batch, with
/// optional label smoothing (PyTorch's `CrossEntropyLoss`).
///
/// # Errors
/// If the shapes do not fit or a target is out of range.
pub fn cross_entropy(logits: &Tensor, targets: &[usize], label_smoothing: f32) -> Result<Tensor> {
    Ok(ventral_autograd::cross_entropy(
        logits,
        targets,
        label_smoothing,
    )?)
}

/// Negative log-likelihood of log-probabilities `[N, C]`, averaged (PyTorch's `NLLLoss`).
///
/// # Errors
/// If the shapes do not fit or a target is out of range.
pub fn nll_loss(log_probs: &Tensor, targets: &[usize]) -> Result<Tensor> {
    Ok(ventral_autograd::nll_loss(log_probs, targets)?)
}

/// Mean squared error (PyTorch's `MSELoss`).
///
/// # Errors
/// If the shapes differ.
pub fn mse_loss(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    Ok(ventral_autograd::mse_loss(prediction, target)?)
}

/// The multiclass hinge loss `L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + 1)`, averaged over the
/// batch, optionally divided by the class count as PyTorch's `MultiMarginLoss` does.
///
/// # Errors
/// If the shapes do not fit or a target is out of range.
pub fn multi_margin_loss(
    scores: &Tensor,
    targets: &[usize],
    normalization: MarginNormalization,
) -> Result<Tensor> {
    Ok(ventral_autograd::multi_margin_loss(
        scores,
        targets,
        normalization,
    )?)
}
