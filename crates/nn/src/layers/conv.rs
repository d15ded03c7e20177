//! 2-D convolution layer.

use ventral_autograd::{Conv2dParams, Tensor};

use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Module, Slot, join};

/// A 2-D convolution over NCHW input, PyTorch's `nn.Conv2d`: weight
/// `[out, in / groups, kh, kw]`, optional bias `[out]`, stride, zero padding, dilation, groups.
///
/// # Shapes
/// - input `[N, in_channels, H, W]`
/// - output `[N, out_channels, (H + 2p - d(kh - 1) - 1) / s + 1, …]`
///
/// ```
/// use ventral_nn::{Init, Module, Tensor, layers::Conv2d};
///
/// // The seed's example: 32x32x3 image, six 5x5x3 filters -> six 28x28 activation maps.
/// let conv = Conv2d::new(3, 6, (5, 5), Default::default(), true, &mut Init::new(0))?;
/// assert_eq!(conv.forward(&Tensor::zeros([1, 3, 32, 32])?)?.dims(), [1, 6, 28, 28]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
}

impl Conv2d {
    /// A convolution with PyTorch's default initialisation (uniform in `±1/√fan_in`,
    /// `fan_in = in / groups · kh · kw`).
    ///
    /// # Errors
    /// If a size is zero or `groups` does not divide both channel counts.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        params: Conv2dParams,
        bias: bool,
        init: &mut Init,
    ) -> Result<Self> {
        let groups = params.groups;
        if in_channels == 0 || out_channels == 0 || kernel.0 == 0 || kernel.1 == 0 || groups == 0 {
            return Err(Error::config(
                "Conv2d",
                "channels, kernel and groups must be positive",
            ));
        }
        if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            return Err(Error::config(
                "Conv2d",
                format!(
                    "{groups} groups must divide {in_channels} input and {out_channels} output channels"
                ),
            ));
        }
        let fan_in = in_channels / groups * kernel.0 * kernel.1;
        let shape = [out_channels, in_channels / groups, kernel.0, kernel.1];
        let weight = init.pytorch_default_weight(&shape, fan_in)?.with_grad();
        let bias = if bias {
            Some(
                init.pytorch_default_bias(&[out_channels], fan_in)?
                    .with_grad(),
            )
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            params,
        })
    }

    fn in_channels(&self) -> usize {
        self.weight.dims()[1] * self.params.groups
    }

    /// `x` must be `[N, in_channels, H, W]`.
    pub(crate) fn check_input(&self, x: &Tensor) -> Result<()> {
        if x.rank() != 4 || x.dims()[1] != self.in_channels() {
            return Err(Error::BadInput {
                expected: format!("[N, {}, H, W]", self.in_channels()),
                got: x.dims().to_vec(),
            }
            .in_layer("", &self.describe()));
        }
        Ok(())
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        x.conv2d(&self.weight, self.bias.as_ref(), self.params)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "weight"), Slot::Parameter(&mut self.weight));
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), Slot::Parameter(b));
        }
    }

    fn describe(&self) -> String {
        let d = self.weight.dims();
        let p = self.params;
        let mut s = format!("Conv2d({}→{}, {}x{}", self.in_channels(), d[0], d[2], d[3]);
        if p.stride != (1, 1) {
            s += &format!(", stride {:?}", p.stride);
        }
        if p.padding != (0, 0) {
            s += &format!(", padding {:?}", p.padding);
        }
        if p.dilation != (1, 1) {
            s += &format!(", dilation {:?}", p.dilation);
        }
        if p.groups != 1 {
            s += &format!(", groups {}", p.groups);
        }
        s + ")"
    }
}
