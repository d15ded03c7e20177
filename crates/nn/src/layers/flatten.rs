//! Flattening all but the batch dimension.

use ventral_autograd::Tensor;

use crate::error::Result;
use crate::module::Module;

/// Flattens dimensions 1.. into one, as `torch.flatten(x, 1)`.
///
/// # Shapes
/// - input `[N, d1, d2, …]`
/// - output `[N, d1 · d2 · …]`
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.flatten(1, x.rank().max(2) - 1)?)
    }
    fn describe(&self) -> String {
        "Flatten".into()
    }
}
