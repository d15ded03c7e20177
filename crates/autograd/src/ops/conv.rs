//! 2-D convolution (stride, padding, dilation, groups, bias) on the im2col + GEMM kernel,
//! with the kernel's three backward passes (input, weight, bias).

use std::sync::Arc;

use ventral_kernels::conv::Conv2d;
pub use ventral_kernels::conv::Conv2dParams;

use crate::error::{Error, Result};
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
        let xs = four(self, weight, "input (lhs)")?;
        let ws = four(weight, self, "weight (rhs)")?;
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
        let out_shape = conv.geometry().output_shape();
        let mut y = vec![0.0; out_shape.iter().product()];
        let bias_data = bias.map(|b| b.data());
        conv.forward(&self.data(), &weight.data(), bias_data.as_deref(), &mut y)?;
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
                                let mut dx = vec![0.0; x.numel()];
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
}
