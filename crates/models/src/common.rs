//! Layer constructors with torchvision's initialisations, shared by the zoo's networks.

use ventral_nn::layers::fused::{add_relu, bn_relu, conv_bn_relu};
use ventral_nn::layers::{BatchNorm2d, BatchNormConfig, Conv2d, Linear, ReLU};
use ventral_nn::{Conv2dParams, Init, Module, Result, Tensor, init::constant};

use crate::summary::forward_child;

/// How a network initialises its convolution and linear weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WeightInit {
    /// PyTorch's layer defaults (uniform in `±1/√fan_in`, weights and biases).
    PytorchDefault,
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, bias 0 (torchvision's ResNet
    /// and VGG convolutions).
    KaimingFanOut,
    /// `normal_(0, std)` (torchvision's VGG linear layers use 0.01), bias 0.
    Normal(f32),
    /// `trunc_normal_(std, a=-2, b=2)`, bias 0 (torchvision's GoogLeNet). With `std = 0.01`
    /// the cut at ±2 lies 200 standard deviations out, so a plain normal draws the same
    /// distribution.
    TruncNormal(f32),
}

/// A `k x k` convolution with square stride and padding, initialised by `how`.
pub(crate) fn conv(
    (cin, cout): (usize, usize),
    k: usize,
    params: Conv2dParams,
    bias: bool,
    how: WeightInit,
    init: &mut Init,
) -> Result<Conv2d> {
    let shape = [cout, cin / params.groups, k, k];
    let fan_out = cout * k * k;
    let weight = match how {
        WeightInit::PytorchDefault => {
            return Conv2d::new(cin, cout, (k, k), params, bias, init);
        }
        WeightInit::KaimingFanOut => init.kaiming_normal_fan_out(&shape, fan_out)?,
        WeightInit::Normal(std) | WeightInit::TruncNormal(std) => init.normal(&shape, std)?,
    };
    let bias = if bias {
        Some(constant(&[cout], 0.0)?.with_grad())
    } else {
        None
    };
    Ok(Conv2d {
        weight: weight.with_grad(),
        bias,
        params,
    })
}

/// A fully connected layer initialised by `how` (Kaiming fan-out is not used for these).
pub(crate) fn linear(
    (fin, fout): (usize, usize),
    how: WeightInit,
    init: &mut Init,
) -> Result<Linear> {
    let std = match how {
        WeightInit::Normal(std) | WeightInit::TruncNormal(std) => std,
        WeightInit::PytorchDefault | WeightInit::KaimingFanOut => {
            return Linear::new(fin, fout, true, init);
        }
    };
    Ok(Linear {
        weight: init.normal(&[fout, fin], std)?.with_grad(),
        bias: Some(constant(&[fout], 0.0)?.with_grad()),
    })
}

/// `BatchNorm2d(c)` with PyTorch's defaults (weight 1, bias 0, eps 1e-5, momentum 0.1).
pub(crate) fn bn(c: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(c)
}

/// `BatchNorm2d(c, eps)`.
pub(crate) fn bn_eps(c: usize, eps: f32) -> Result<BatchNorm2d> {
    BatchNorm2d::with_config(
        c,
        BatchNormConfig {
            eps,
            ..BatchNormConfig::default()
        },
    )
}

/// `relu(y + shortcut)`, the end of a residual block: one op ([`add_relu`]), or the sum and
/// then the block's `relu` child where fusion is off (a summary lists that layer).
///
/// # Errors
/// If the shapes do not match (a model bug), naming the op.
pub(crate) fn residual_relu(y: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
    if let Some(out) = add_relu(y, shortcut)? {
        return Ok(out);
    }
    forward_child(&ReLU, "relu", &y.add(shortcut)?)
}

/// `relu?(bn(conv(x)))` for the named children `conv` and `bn` of a block: one fused
/// convolution in inference ([`conv_bn_relu`]), else the convolution and then the batch
/// norm and ReLU as one op ([`bn_relu`], the same bits), or the layers in turn where fusion
/// is off (a summary).
///
/// # Errors
/// A layer's error, naming the child.
pub(crate) fn conv_bn(
    (conv, conv_name): (&Conv2d, &str),
    (bn, bn_name): (&BatchNorm2d, &str),
    relu: bool,
    x: &Tensor,
) -> Result<Tensor> {
    let fused = conv_bn_relu(conv, Some(bn), relu, x)
        .map_err(|e| e.in_layer(conv_name, &conv.describe()))?;
    if let Some(y) = fused {
        return Ok(y);
    }
    let y = forward_child(conv, conv_name, x)?;
    if relu && let Some(y) = bn_relu(bn, &y).map_err(|e| e.in_layer(bn_name, &bn.describe()))? {
        return Ok(y);
    }
    let y = forward_child(bn, bn_name, &y)?;
    if relu {
        forward_child(&ReLU, "relu", &y)
    } else {
        Ok(y)
    }
}
