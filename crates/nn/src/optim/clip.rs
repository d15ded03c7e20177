//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`: every gradient of
//! a module is scaled by the same factor so that their joint L2 norm is at most a bound,
//! which keeps one bad batch from throwing the weights far (a common guard for RNNs and for
//! high learning rates).

use ventral_autograd::Gradients;

use crate::error::{Error, Result};
use crate::module::{Module, named_parameters};

/// Scales the gradients of `module`'s parameters in `grads` by `max_norm / (norm + 1e-6)`
/// when their joint L2 norm `norm` exceeds `max_norm` (PyTorch's formula), and returns that
/// norm as it was before clipping. The norm is summed in f64 over the parameters in
/// state-dict order, so the same gradients always clip to the same bits. Parameters
/// without a gradient are skipped.
///
/// # Errors
/// A `max_norm` that is not a finite number above 0, or gradients that are not finite (their
/// norm would scale every gradient to NaN).
pub fn clip_grad_norm(
    module: &mut dyn Module,
    grads: &mut Gradients,
    max_norm: f32,
) -> Result<f32> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::config(
            "clip_grad_norm",
            format!("max_norm must be a finite number > 0, got {max_norm}"),
        ));
    }
    let params: Vec<_> = named_parameters(module)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let squares: f64 = params
        .iter()
        .filter_map(|p| grads.get(p))
        .map(|g| {
            g.values()
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
        })
        .sum();
    let norm = squares.sqrt() as f32;
    if !norm.is_finite() {
        return Err(Error::config(
            "clip_grad_norm",
            format!("the gradients' norm is {norm}: a gradient is not finite"),
        ));
    }
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        for p in &params {
            if let Some(scaled) = grads.get(p).map(|g| g.mul_scalar(scale)).transpose()? {
                grads.insert(p, scaled)?;
            }
        }
    }
    Ok(norm)
}
