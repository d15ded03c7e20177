//! Activation functions as layers: the fixed ones (ReLU, LeakyReLU, ELU, Sigmoid, Tanh)
//! and PReLU with its learned slope.

use ventral_autograd::Tensor;

use super::py_float;
use crate::error::{Error, Result};
use crate::module::{Module, Slot, join};

/// `max(0, x)`.
///
/// # Shapes
/// Any; the output has the input's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.relu()?)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn describe(&self) -> String {
        "ReLU".into()
    }
}

/// `1 / (1 + e^-x)`.
///
/// # Shapes
/// Any; the output has the input's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sigmoid;

impl Module for Sigmoid {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.sigmoid()?)
    }
    fn describe(&self) -> String {
        "Sigmoid".into()
    }
}

/// `tanh(x)`.
///
/// # Shapes
/// Any; the output has the input's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.tanh()?)
    }
    fn describe(&self) -> String {
        "Tanh".into()
    }
}

/// PyTorch's `nn.LeakyReLU`: `x` for `x > 0`, else `negative_slope · x` (default 0.01; the
/// lecture's `max(0.1x, x)` is slope 0.1).
///
/// # Shapes
/// Any; the output has the input's shape.
///
/// ```
/// use ventral_nn::{Module, Tensor, layers::LeakyReLU};
///
/// let y = LeakyReLU::new(0.1).forward(&Tensor::from_vec(vec![-2.0, 3.0], [2])?)?;
/// assert_eq!(y.to_vec(), [-0.2, 3.0]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyReLU {
    /// The slope for negative inputs.
    pub negative_slope: f32,
}

impl LeakyReLU {
    /// A leaky ReLU with the given negative slope.
    pub fn new(negative_slope: f32) -> Self {
        Self { negative_slope }
    }
}

impl Default for LeakyReLU {
    /// PyTorch's default slope, 0.01.
    fn default() -> Self {
        Self::new(0.01)
    }
}

impl Module for LeakyReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.leaky_relu(self.negative_slope)?)
    }
    fn describe(&self) -> String {
        format!(
            "LeakyReLU(negative_slope={})",
            py_float(self.negative_slope)
        )
    }
}

/// PyTorch's `nn.ELU` (Clevert et al. 2016): `x` for `x > 0`, else `α (eˣ − 1)`, default
/// `α = 1`.
///
/// # Shapes
/// Any; the output has the input's shape.
///
/// ```
/// use ventral_nn::{Module, Tensor, layers::ELU};
///
/// // α (e⁰ − 1) = 0 at 0; 2 passes unchanged.
/// let y = ELU::default().forward(&Tensor::from_vec(vec![0.0, 2.0], [2])?)?;
/// assert_eq!(y.to_vec(), [0.0, 2.0]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ELU {
    /// The saturation value for large negative inputs is `−alpha`.
    pub alpha: f32,
}

impl ELU {
    /// An ELU with the given `alpha`.
    pub fn new(alpha: f32) -> Self {
        Self { alpha }
    }
}

impl Default for ELU {
    /// PyTorch's default, `alpha = 1`.
    fn default() -> Self {
        Self::new(1.0)
    }
}

impl Module for ELU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.elu(self.alpha)?)
    }
    fn describe(&self) -> String {
        format!("ELU(alpha={})", py_float(self.alpha))
    }
}

/// PyTorch's `nn.PReLU` (He et al. 2015): `x` for `x > 0`, else `a · x` with a learned slope
/// `weight` of shape `[num_parameters]`: 1 (shared) or the channel count `C` (one per
/// channel, dimension 1 of the input). Initialised to 0.25, PyTorch's default. State dict:
/// `weight`.
///
/// # Shapes
/// - input `[N, C, *]` (any rank ≥ 1 when the slope is shared)
/// - output: the input's shape
///
/// ```
/// use ventral_nn::{Module, Tensor, layers::PReLU};
///
/// let y = PReLU::new(1)?.forward(&Tensor::from_vec(vec![-4.0, 3.0], [1, 2])?)?;
/// assert_eq!(y.to_vec(), [-1.0, 3.0]); // 0.25 · −4
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PReLU {
    /// The slopes `[num_parameters]`.
    pub weight: Tensor,
}

impl PReLU {
    /// A PReLU with `num_parameters` slopes, each 0.25.
    ///
    /// # Errors
    /// [`Error::Config`] if `num_parameters` is 0.
    pub fn new(num_parameters: usize) -> Result<Self> {
        Self::with_init(num_parameters, 0.25)
    }

    /// A PReLU with `num_parameters` slopes, each `init`.
    ///
    /// # Errors
    /// [`Error::Config`] if `num_parameters` is 0.
    pub fn with_init(num_parameters: usize, init: f32) -> Result<Self> {
        if num_parameters == 0 {
            return Err(Error::config("PReLU", "num_parameters must be positive"));
        }
        Ok(Self {
            weight: Tensor::full([num_parameters], init)?.with_grad(),
        })
    }
}

impl Module for PReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.weight.numel();
        if n > 1 && (x.rank() < 2 || x.dims()[1] != n) {
            return Err(Error::BadInput {
                expected: format!("[N, {n}, *]"),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        x.prelu(&self.weight)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "weight"), Slot::Parameter(&mut self.weight));
    }
    fn describe(&self) -> String {
        format!("PReLU(num_parameters={})", self.weight.numel())
    }
}
