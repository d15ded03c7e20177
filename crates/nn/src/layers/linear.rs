//! Fully connected layer.

use ventral_autograd::Tensor;

use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Module, Slot, join};

/// `y = x Wᵀ + b`: the lecture's `B_j = Σ_i W_ij · A_i + b_j`, with `weight` `[out, in]` as in
/// PyTorch.
///
/// # Shapes
/// - input `[N, in_features]`
/// - output `[N, out_features]`
///
/// ```
/// use ventral_nn::{Init, Module, Tensor, layers::Linear};
///
/// let layer = Linear::new(3, 2, true, &mut Init::new(0))?;
/// let y = layer.forward(&Tensor::ones([4, 3])?)?;
/// assert_eq!(y.dims(), [4, 2]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation (uniform in `±1/√in_features`).
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: &mut Init,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::config(
                "Linear",
                format!("sizes must be positive, got {in_features}→{out_features}"),
            ));
        }
        let weight = init
            .pytorch_default_weight(&[out_features, in_features], in_features)?
            .with_grad();
        let bias = if bias {
            Some(
                init.pytorch_default_bias(&[out_features], in_features)?
                    .with_grad(),
            )
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 2 || x.dims()[1] != self.in_features() {
            return Err(Error::BadInput {
                expected: format!("[N, {}]", self.in_features()),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        let y = x.matmul(&self.weight.t()?)?;
        Ok(match &self.bias {
            Some(b) => y.add(b)?,
            None => y,
        })
    }

    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "weight"), Slot::Parameter(&mut self.weight));
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), Slot::Parameter(b));
        }
    }

    fn describe(&self) -> String {
        let d = self.weight.dims();
        format!("Linear({}→{})", d[1], d[0])
    }
}
