//! 2-D convolution (stride, padding, dilation, groups, bias) on the im2col + GEMM kernel,
//! with the kernel's three backward passes (input, weight, bias).

use std::sync::Arc;

pub use ventral_kernels::conv::Conv2dParams;
use ventral_kernels::conv::{Conv2d, Epilogue};

use crate::conv_weights;
use crate::error::{Error, Result};
use crate::graph::is_grad_enabled;
use crate::profile::{self, Pass};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// `shape` as `[N, C, H, W]`, or an error naming the op and both operand shapes.
fn four(t: &Tensor, other: &Tensor, what: &str) -> Result<[usize; 4]> {
    t.dims().try_into().map_err(|_| {
        Error::mismatch(
            "conv2d",
            t.shape(),
            other.shape(),
            format!("do not fit: the {what} must have rank 4"),
        )
    })
}

impl Tensor {
    /// 2-D cross-correlation of `self` `[N, C, H, W]` with `weight`
    /// `[O, C / groups, KH, KW]`, plus an optional `bias` `[O]`, as
    /// `torch.nn.functional.conv2d`. Output `[N, O, OH, OW]` with
    /// `OH = (H + 2·pad - dil·(KH - 1) - 1) / stride + 1` (likewise `OW`).
    ///
    /// ```
    /// use ventral_autograd::{Conv2dParams, Tensor};
    ///
    /// // LeNet-5's C1: a 32x32 image and six 5x5 filters give six 28x28 maps.
    /// let x = Tensor::ones([1, 1, 32, 32])?;
    /// let w = Tensor::full([6, 1, 5, 5], 0.1)?.with_grad();
    /// let y = x.conv2d(&w, None, Conv2dParams::default())?;
    /// assert_eq!(y.dims(), [1, 6, 28, 28]);
    /// let g = y.sum_all()?.backward()?;
    /// // Every tap of every filter sees an input of 1 at each of the 28·28 positions.
    /// assert_eq!(g.get(&w).unwrap().to_vec()[0], 784.0);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the input or weight is not rank 4 or the bias is
    /// not `[O]`; the kernel's error (naming `conv2d` and the shapes) for channels that do
    /// not match, zero strides, or a kernel larger than the padded input.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: Conv2dParams,
    ) -> Result<Tensor> {
        let (conv, ws) = checked_conv(self, weight, bias, params)?;
        let out_shape = conv.geometry().output_shape();
        let y = if records(self, weight, bias) {
            let mut y = ventral_kernels::elementwise::zeros(out_shape.iter().product());
            let bias_data = bias.map(|b| b.data());
            conv.forward(&self.data(), &weight.data(), bias_data.as_deref(), &mut y)?;
            y
        } else {
            // No graph (inference): the weights' packing is reused from call to call.
            conv_weights::forward(&conv, self, weight, bias, Epilogue::Identity)?
        };
        let (x, w, has_bias) = (self.clone(), weight.clone(), bias.is_some());
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Tensor::record(
            "conv2d",
            Arc::new(y),
            Shape::from(out_shape),
            &inputs,
            move |ctx| {
                let g = ctx.grad();
                // Timed apart so a profile can tell the two gradients' costs apart.
                let dx = ctx
                    .needs(0)
                    .then(|| {
                        profile::span(
                            profile::CONV_INPUT_GRAD,
                            Pass::Backward,
                            || -> Result<Vec<f32>> {
                                let mut dx = ventral_kernels::elementwise::zeros(x.numel());
                                conv.backward_input(g, &w.data(), &mut dx)?;
                                Ok(dx)
                            },
                        )
                    })
                    .transpose()?;
                let dw = ctx
                    .needs(1)
                    .then(|| {
                        profile::span(
                            profile::CONV_WEIGHT_GRAD,
                            Pass::Backward,
                            || -> Result<Vec<f32>> {
                                let mut dw = vec![0.0; w.numel()];
                                conv.backward_weight(&x.data(), g, &mut dw)?;
                                Ok(dw)
                            },
                        )
                    })
                    .transpose()?;
                let mut grads = vec![dx, dw];
                if has_bias {
                    let db = ctx
                        .needs(2)
                        .then(|| {
                            profile::span(
                                profile::CONV_BIAS_GRAD,
                                Pass::Backward,
                                || -> Result<Vec<f32>> {
                                    let mut db = vec![0.0; ws[0]];
                                    conv.backward_bias(g, &mut db)?;
                                    Ok(db)
                                },
                            )
                        })
                        .transpose()?;
                    grads.push(db);
                }
                Ok(grads)
            },
        )
    }

    /// `relu(conv2d(self, weight, bias))` — the `conv → ReLU` of inference in one pass: when
    /// no graph is recorded ([`crate::no_grad`], or no operand requires a gradient) the ReLU
    /// is applied by the convolution kernel to each block of output while it is in cache
    /// (`ventral_kernels::conv::Epilogue::Relu`); otherwise it is [`Tensor::conv2d`] then
    /// [`Tensor::relu`], with their gradients. Both give the same bits.
    ///
    /// ```
    /// use ventral_autograd::{Conv2dParams, Tensor, no_grad};
    ///
    /// let x = Tensor::from_vec(vec![1.0, -2.0, 3.0, -4.0], [1, 1, 2, 2])?;
    /// let w = Tensor::ones([1, 1, 1, 1])?;
    /// let y = no_grad(|| x.conv2d_relu(&w, None, Conv2dParams::default()))?;
    /// assert_eq!(y.to_vec(), [1.0, 0.0, 3.0, 0.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::conv2d`].
    pub fn conv2d_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: Conv2dParams,
    ) -> Result<Tensor> {
        if records(self, weight, bias) {
            return self.conv2d(weight, bias, params)?.relu();
        }
        let (conv, _) = checked_conv(self, weight, bias, params)?;
        let out_shape = conv.geometry().output_shape();
        let y = conv_weights::forward(&conv, self, weight, bias, Epilogue::Relu)?;
        // Nothing is recorded, so charge the profiler's lap here (to the convolution).
        profile::forward_lap("conv2d");
        Tensor::from_vec(y, out_shape)
    }
}

/// Whether a convolution of `x` with `weight` and `bias` records a graph node.
fn records(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> bool {
    is_grad_enabled()
        && (x.requires_grad() || weight.requires_grad() || bias.is_some_and(Tensor::requires_grad))
}

/// The kernel convolution for `x * weight (+ bias)` and the weight's shape, after checking
/// ranks and the bias's length (errors name `conv2d` and the shapes).
fn checked_conv(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: Conv2dParams,
) -> Result<(Conv2d, [usize; 4])> {
    let xs = four(x, weight, "input (lhs)")?;
    let ws = four(weight, x, "weight (rhs)")?;
    let conv = Conv2d::new(xs, ws, params)?;
    if let Some(b) = bias
        && b.dims() != [ws[0]]
    {
        return Err(Error::mismatch(
            "conv2d",
            weight.shape(),
            b.shape(),
            format!("do not fit: the bias (rhs) must be [{}]", ws[0]),
        ));
    }
    Ok((conv, ws))
}
