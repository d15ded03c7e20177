//! Local response normalisation (Krizhevsky et al. 2012, AlexNet).

use ventral_autograd::{LrnParams, Tensor};

use super::py_float;
use crate::error::{Error, Result};
use crate::module::Module;

/// PyTorch's `nn.LocalResponseNorm`: each channel divided by a power of its neighbours'
/// squared activations, `b_c = a_c / (k + α/n · Σ_{c' ∈ W(c)} a_{c'}²)^β` with
/// `W(c) = [c − n/2, c + (n−1)/2] ∩ [0, C)`. PyTorch's defaults are `α = 1e-4`, `β = 0.75`,
/// `k = 1`; AlexNet uses `n = 5`, `k = 2`.
///
/// # Shapes
/// - input `[N, C, *]` (rank at least 2)
/// - output: the input's shape
///
/// ```
/// use ventral_nn::{LrnParams, Module, Tensor, layers::LocalResponseNorm};
///
/// // Size 1, α = 1, β = 1, k = 1: b = a / (1 + a²); 2 / (1 + 4) = 0.4.
/// let lrn = LocalResponseNorm::new(LrnParams::new(1).with_alpha(1.0).with_beta(1.0));
/// let y = lrn.forward(&Tensor::full([1, 1, 1, 1], 2.0)?)?;
/// assert!((y.to_vec()[0] - 0.4).abs() < 1e-6);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LocalResponseNorm {
    /// Window size `n`, `α`, `β` and `k`.
    pub params: LrnParams,
}

impl LocalResponseNorm {
    /// A normalisation with `params` (`LrnParams::new(size)` gives PyTorch's defaults).
    pub fn new(params: LrnParams) -> Self {
        Self { params }
    }
}

impl Module for LocalResponseNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            return Err(Error::BadInput {
                expected: "[N, C, *]".into(),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        x.local_response_norm(&self.params)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }
    fn describe(&self) -> String {
        let p = self.params;
        format!(
            "LocalResponseNorm({}, alpha={}, beta={}, k={})",
            p.size,
            py_float(p.alpha),
            py_float(p.beta),
            py_float(p.k)
        )
    }
}
