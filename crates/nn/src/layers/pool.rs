//! Pooling layers.

use ventral_autograd::{MaxPool2dParams, Tensor};

use crate::error::{Error, Result};
use crate::module::{Module, Slot};

/// Max pooling over NCHW input, PyTorch's `nn.MaxPool2d` (kernel, stride defaulting to the
/// kernel, padding, dilation, ceil mode).
///
/// # Shapes
/// - input `[N, C, H, W]`
/// - output `[N, C, H', W']`
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
        x.max_pool2d(&self.params)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }
    fn visit(&mut self, _: &str, _: &mut dyn FnMut(&str, Slot<'_>)) {}
    fn describe(&self) -> String {
        let p = self.params;
        format!(
            "MaxPool2d({}x{}, stride {:?})",
            p.kernel.0, p.kernel.1, p.stride
        )
    }
}
