//! Maxout units (Goodfellow et al. 2013).

use ventral_autograd::Tensor;

use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Module, Slot};

use super::Linear;

/// A maxout layer: `k` affine pieces per output unit, keeping the largest,
/// `y_j = max_{p < k} (W_{jk+p} · x + b_{jk+p})`. It is a [`Linear`] from `in_features` to
/// `out_features · k` followed by a max over each unit's `k` consecutive outputs.
///
/// PyTorch has no maxout layer, so there is no torchvision naming to match; the state dict is
/// the inner linear map's, directly under the layer's own prefix: `weight`
/// `[out_features · k, in_features]` and `bias` `[out_features · k]`, where row `j·k + p` is
/// piece `p` of unit `j`. A PyTorch `nn.Linear(in, out * k)` followed by
/// `y.view(N, out, k).max(-1)` loads the same tensors.
///
/// # Shapes
/// - input `[N, in_features]`
/// - output `[N, out_features]`
///
/// ```
/// use ventral_nn::{Init, Module, Tensor, layers::Maxout};
///
/// let layer = Maxout::new(3, 2, 4, &mut Init::new(0))?; // 2 units of 4 pieces each
/// assert_eq!(layer.linear.weight.dims(), [8, 3]);
/// assert_eq!(layer.forward(&Tensor::ones([5, 3])?)?.dims(), [5, 2]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maxout {
    /// The pieces: `in_features → out_features · pieces`.
    pub linear: Linear,
    /// Pieces per output unit (`k`).
    pub pieces: usize,
}

impl Maxout {
    /// A maxout layer with PyTorch's default `Linear` initialisation for its pieces.
    ///
    /// # Errors
    /// [`Error::Config`] if a size or `pieces` is zero.
    pub fn new(
        in_features: usize,
        out_features: usize,
        pieces: usize,
        init: &mut Init,
    ) -> Result<Self> {
        if pieces == 0 || out_features == 0 {
            return Err(Error::config(
                "Maxout",
                format!("units and pieces must be positive, got {out_features} units of {pieces}"),
            ));
        }
        let total = out_features.checked_mul(pieces).ok_or_else(|| {
            Error::config("Maxout", "out_features · pieces overflows".to_string())
        })?;
        Ok(Self {
            linear: Linear::new(in_features, total, true, init)?,
            pieces,
        })
    }

    fn in_features(&self) -> usize {
        self.linear.weight.dims()[1]
    }

    fn out_features(&self) -> usize {
        self.linear.weight.dims()[0] / self.pieces
    }
}

impl Module for Maxout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 2 || x.dims()[1] != self.in_features() {
            return Err(Error::BadInput {
                expected: format!("[N, {}]", self.in_features()),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        let run = || -> Result<Tensor> {
            let z = self.linear.forward(x)?; // [N, out · k]
            Ok(z.maxout(self.pieces)?) // [N, out]
        };
        run().map_err(|e| e.in_layer("", &self.describe()))
    }

    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        self.linear.visit(prefix, f);
    }

    fn describe(&self) -> String {
        format!(
            "Maxout({}→{}, pieces={})",
            self.in_features(),
            self.out_features(),
            self.pieces
        )
    }
}
