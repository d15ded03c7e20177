//! Pooling layers: max, average and adaptive average pooling over NCHW input.

use ventral_autograd::{AvgPool2dParams, MaxPool2dParams, Tensor};

use super::py_bool;
use crate::error::{Error, Result};
use crate::module::Module;

/// The layer's error for an input that is not `[N, C, H, W]`.
fn check_nchw(x: &Tensor, layer: &dyn Module) -> Result<()> {
    if x.rank() == 4 {
        Ok(())
    } else {
        Err(Error::BadInput {
            expected: "[N, C, H, W]".into(),
            got: x.dims().to_vec(),
        }
        .in_layer("", &layer.describe()))
    }
}

/// `(a, b)` as PyTorch prints a pair that may be square: `2` or `(2, 3)`.
fn pair(p: (usize, usize)) -> String {
    if p.0 == p.1 {
        p.0.to_string()
    } else {
        format!("({}, {})", p.0, p.1)
    }
}

/// Max pooling over NCHW input, PyTorch's `nn.MaxPool2d` (kernel, stride defaulting to the
/// kernel, padding, dilation, ceil mode).
///
/// # Shapes
/// - input `[N, C, H, W]`
/// - output `[N, C, H', W']`
///
/// ```
/// use ventral_nn::{Module, Tensor, layers::MaxPool2d};
///
/// let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
/// assert_eq!(MaxPool2d::new(2).forward(&x)?.to_vec(), [5.0, 7.0, 13.0, 15.0]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    /// The pooling window and its placement.
    pub params: MaxPool2dParams,
}

impl MaxPool2d {
    /// A square `k x k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        Self {
            params: MaxPool2dParams::square(k),
        }
    }

    /// A pool with explicit parameters.
    pub fn with_params(params: MaxPool2dParams) -> Self {
        Self { params }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_nchw(x, self)?;
        x.max_pool2d(&self.params)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }
    fn describe(&self) -> String {
        let p = self.params;
        format!(
            "MaxPool2d({}x{}, stride {:?})",
            p.kernel.0, p.kernel.1, p.stride
        )
    }
}

/// Average pooling over NCHW input, PyTorch's `nn.AvgPool2d` (kernel, stride defaulting to
/// the kernel, padding, ceil mode, `count_include_pad`, `divisor_override`).
///
/// # Shapes
/// - input `[N, C, H, W]`
/// - output `[N, C, (H + 2p − k) / s + 1, (W + 2p − k) / s + 1]`
///
/// ```
/// use ventral_nn::{Module, Tensor, layers::AvgPool2d};
///
/// // 0..16 as a 4x4 image; the top-left 2x2 window holds 0, 1, 4, 5: mean 2.5.
/// let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
/// assert_eq!(AvgPool2d::new(2).forward(&x)?.to_vec(), [2.5, 4.5, 10.5, 12.5]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    /// The pooling window, its placement and its divisor.
    pub params: AvgPool2dParams,
}

impl AvgPool2d {
    /// A square `k x k` window with stride `k` and PyTorch's other defaults.
    pub fn new(k: usize) -> Self {
        Self {
            params: AvgPool2dParams::square(k),
        }
    }

    /// A pool with explicit parameters.
    pub fn with_params(params: AvgPool2dParams) -> Self {
        Self { params }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_nchw(x, self)?;
        x.avg_pool2d(&self.params)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }
    fn describe(&self) -> String {
        let p = self.params;
        let mut s = format!(
            "AvgPool2d(kernel_size={}, stride={}, padding={}",
            pair(p.kernel),
            pair(p.stride),
            pair(p.padding)
        );
        if p.ceil_mode {
            s += ", ceil_mode=True";
        }
        if !p.count_include_pad {
            s += &format!(", count_include_pad={}", py_bool(false));
        }
        if let Some(d) = p.divisor_override {
            s += &format!(", divisor_override={d}");
        }
        s + ")"
    }
}

/// Adaptive average pooling to a fixed output size, PyTorch's `nn.AdaptiveAvgPool2d`: output
/// cell `i` averages rows `⌊iH/oh⌋ .. ⌈(i+1)H/oh⌉` (likewise columns), so any input size
/// maps to `(oh, ow)` (torchvision's classifiers use it before their fully connected layers).
///
/// # Shapes
/// - input `[N, C, H, W]`
/// - output `[N, C, oh, ow]`
///
/// ```
/// use ventral_nn::{Module, Tensor, layers::AdaptiveAvgPool2d};
///
/// // A 1x1 output is the global average: mean of 0..16 = 7.5.
/// let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
/// assert_eq!(AdaptiveAvgPool2d::new((1, 1)).forward(&x)?.to_vec(), [7.5]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool2d {
    /// The output size `(oh, ow)`.
    pub output: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// A pool producing `output = (oh, ow)`.
    pub fn new(output: (usize, usize)) -> Self {
        Self { output }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_nchw(x, self)?;
        x.adaptive_avg_pool2d(self.output)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }
    fn describe(&self) -> String {
        format!(
            "AdaptiveAvgPool2d(output_size=({}, {}))",
            self.output.0, self.output.1
        )
    }
}
