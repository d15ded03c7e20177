//! Normalisation: `batch_norm` (train and eval, with running statistics), `batch_norm_relu`
//! (the two fused, for training) and
//! `local_response_norm` (AlexNet's LRN), on the normalisation kernels.

use std::sync::Arc;

use ventral_kernels::norm as k;
pub use ventral_kernels::norm::LrnParams;

use super::Mode;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Hyper-parameters of [`Tensor::batch_norm`]; the default is PyTorch's (`eps = 1e-5`,
/// `momentum = 0.1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormOptions {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the current batch when updating the running statistics.
    pub momentum: f32,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// The running statistics a batch norm reads in evaluation and updates in training: leaf
/// tensors of shape `[C]` that do not require gradients (buffers, in PyTorch's terms).
#[derive(Debug)]
pub struct RunningStats<'a> {
    /// Running mean per channel.
    pub mean: &'a mut Tensor,
    /// Running unbiased variance per channel.
    pub var: &'a mut Tensor,
}

/// Checks that an optional per-channel tensor is `[C]`.
fn check_channel(what: &str, x: &Tensor, t: Option<&Tensor>) -> Result<()> {
    let c = x.dims().get(1).copied().unwrap_or(0);
    match t {
        Some(t) if t.dims() != [c] => Err(Error::mismatch(
            "batch_norm",
            x.shape(),
            t.shape(),
            format!("do not fit: the {what} (rhs) must be [{c}], one value per channel"),
        )),
        _ => Ok(()),
    }
}

/// What a batch norm with batch statistics applies to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing: [`Tensor::batch_norm`].
    Identity,
    /// ReLU: [`Tensor::batch_norm_relu`].
    Relu,
}

/// A batch norm's input gradients in input order (`x`, then `weight` and `bias` where
/// given), each only if `needs` it.
fn pack_grads(
    g: k::BatchNormGrads,
    (has_w, has_b): (bool, bool),
    needs: &dyn Fn(usize) -> bool,
) -> Vec<Option<Vec<f32>>> {
    let mut out = vec![needs(0).then_some(g.dx)];
    if has_w {
        out.push(needs(1).then_some(g.dweight));
    }
    if has_b {
        out.push(needs(1 + usize::from(has_w)).then_some(g.dbias));
    }
    out
}

impl Tensor {
    /// Batch normalisation of `[N, C, *]` (`torch.nn.functional.batch_norm`): per channel,
    /// `(x - μ) / sqrt(σ² + eps) · weight + bias`.
    ///
    /// In [`Mode::Train`] (or in [`Mode::Eval`] without running statistics) `μ`, `σ²` are the
    /// batch's (biased variance) and the gradient flows through them; in training, `running`
    /// is updated in place with `momentum` and the unbiased variance. In [`Mode::Eval`] with
    /// `running`, they are the running statistics (a fixed affine map).
    ///
    /// ```
    /// use ventral_autograd::{BatchNormOptions, Mode, Tensor};
    ///
    /// let x = Tensor::from_vec(vec![1.0, 3.0], [2, 1])?; // one channel holding [1, 3]
    /// let y = x.batch_norm(None, None, None, Mode::Train, BatchNormOptions { eps: 0.0, momentum: 0.1 })?;
    /// assert_eq!(y.to_vec(), [-1.0, 1.0]); // mean 2, variance 1
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `weight`, `bias` or the statistics are not `[C]`;
    /// the kernel's error for a rank below 2 or a channel with fewer than 2 values in
    /// training.
    pub fn batch_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running: Option<RunningStats<'_>>,
        mode: Mode,
        options: BatchNormOptions,
    ) -> Result<Tensor> {
        match (mode, running) {
            (Mode::Eval, Some(r)) => self.batch_norm_running_stats((weight, bias), r, options),
            (mode, running) => self.batch_norm_batch_stats(
                (weight, bias),
                running.filter(|_| mode == Mode::Train),
                options,
                Then::Identity,
            ),
        }
    }

    /// Batch norm with the running statistics (eval mode), which it leaves alone.
    fn batch_norm_running_stats(
        &self,
        (weight, bias): (Option<&Tensor>, Option<&Tensor>),
        r: RunningStats<'_>,
        options: BatchNormOptions,
    ) -> Result<Tensor> {
        check_operands(self, weight, bias, Some(&r))?;
        let shape = self.shape().clone();
        let x = self.data();
        let w = weight.map(|w| w.data());
        let b = bias.map(|b| b.data());
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let xs = self.clone();
        let ws = weight.cloned();
        let (mean, var) = (r.mean.to_vec(), r.var.to_vec());
        let y = k::batch_norm_eval(
            &x,
            shape.dims(),
            w.as_deref(),
            b.as_deref(),
            &mean,
            &var,
            options.eps,
        )?;
        Tensor::record(
            "batch_norm",
            Arc::new(y),
            shape.clone(),
            &inputs,
            move |ctx| {
                let wd = ws.as_ref().map(|w| w.data());
                let g = k::batch_norm_backward_eval(
                    ctx.grad(),
                    &xs.data(),
                    shape.dims(),
                    wd.as_deref(),
                    &mean,
                    &var,
                    options.eps,
                )?;
                Ok(pack_grads(g, (has_w, has_b), &|i| ctx.needs(i)))
            },
        )
    }

    /// `relu(batch_norm(x))` (see [`Tensor::batch_norm`]) as one op: in [`Mode::Train`] (or
    /// without running statistics) one pass over memory normalises with the batch's
    /// statistics, updates `running` exactly as [`Tensor::batch_norm`] does and applies the
    /// ReLU, and the backward applies the ReLU's mask (`y > 0`, from this op's output) and
    /// the batch norm's gradient together. The results are the same bits as
    /// `x.batch_norm(…)?.relu()`, forward and backward; only the batch norm's own output is
    /// never stored. In [`Mode::Eval`] with running statistics it is exactly those two ops.
    ///
    /// ```
    /// use ventral_autograd::{BatchNormOptions, Mode, Tensor};
    ///
    /// let x = Tensor::from_vec(vec![1.0, 3.0], [2, 1])?.with_grad(); // mean 2, variance 1
    /// let options = BatchNormOptions { eps: 0.0, momentum: 0.1 };
    /// let y = x.batch_norm_relu(None, None, None, Mode::Train, options)?;
    /// assert_eq!(y.to_vec(), [0.0, 1.0]);
    /// let g = y.sum_all()?.backward()?;
    /// assert_eq!(g.get(&x).unwrap().to_vec(), [0.0, 0.0]); // Σ relu(x̂) = 1 whatever x is
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::batch_norm`].
    pub fn batch_norm_relu(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running: Option<RunningStats<'_>>,
        mode: Mode,
        options: BatchNormOptions,
    ) -> Result<Tensor> {
        match (mode, running) {
            (Mode::Eval, Some(r)) => self
                .batch_norm(weight, bias, Some(r), mode, options)?
                .relu(),
            (mode, running) => self.batch_norm_batch_stats(
                (weight, bias),
                running.filter(|_| mode == Mode::Train),
                options,
                Then::Relu,
            ),
        }
    }

    /// Batch norm with the batch's statistics (training, or no running statistics),
    /// updating `running` when given, followed by `then`.
    fn batch_norm_batch_stats(
        &self,
        (weight, bias): (Option<&Tensor>, Option<&Tensor>),
        running: Option<RunningStats<'_>>,
        options: BatchNormOptions,
        then: Then,
    ) -> Result<Tensor> {
        check_operands(self, weight, bias, running.as_ref())?;
        let shape = self.shape().clone();
        let x = self.data();
        let w = weight.map(|w| w.data());
        let b = bias.map(|b| b.data());
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let params = k::BatchNormParams::new(options.eps, options.momentum);
        let forward = match then {
            Then::Identity => k::batch_norm_train,
            Then::Relu => k::batch_norm_relu_train,
        };
        let out = match running {
            Some(r) => {
                let (mut mean, mut var) = (r.mean.to_vec(), r.var.to_vec());
                let stats = k::RunningStats {
                    mean: &mut mean,
                    var: &mut var,
                };
                let out = forward(
                    &x,
                    shape.dims(),
                    w.as_deref(),
                    b.as_deref(),
                    Some(stats),
                    params,
                )?;
                r.mean.update(|d| d.copy_from_slice(&mean))?;
                r.var.update(|d| d.copy_from_slice(&var))?;
                out
            }
            None => forward(&x, shape.dims(), w.as_deref(), b.as_deref(), None, params)?,
        };
        let (save_mean, save_invstd) = (out.save_mean, out.save_invstd);
        let y = Arc::new(out.y);
        // The ReLU's mask is its output, which the next layer keeps anyway.
        let mask = (then == Then::Relu).then(|| y.clone());
        let (xs, ws, has_w, has_b) = (
            self.clone(),
            weight.cloned(),
            weight.is_some(),
            bias.is_some(),
        );
        let op = match then {
            Then::Identity => "batch_norm",
            Then::Relu => "batch_norm_relu",
        };
        Tensor::record(op, y, shape.clone(), &inputs, move |ctx| {
            let wd = ws.as_ref().map(|w| w.data());
            let (xd, wd) = (xs.data(), wd.as_deref());
            let g = match &mask {
                None => k::batch_norm_backward_train(
                    ctx.grad(),
                    &xd,
                    shape.dims(),
                    wd,
                    &save_mean,
                    &save_invstd,
                )?,
                Some(y) => k::batch_norm_relu_backward_train(
                    ctx.grad(),
                    y,
                    &xd,
                    shape.dims(),
                    wd,
                    &save_mean,
                    &save_invstd,
                )?,
            };
            Ok(pack_grads(g, (has_w, has_b), &|i| ctx.needs(i)))
        })
    }

    /// Local response normalisation across channels of `[N, C, *]`
    /// (`torch.nn.LocalResponseNorm`): `x_c / (k + alpha/size · Σ_{c' near c} x_{c'}²)^beta`.
    ///
    /// # Errors
    /// The kernel's error (naming the op and shape) for a rank below 2 or `size == 0`.
    pub fn local_response_norm(&self, params: &LrnParams) -> Result<Tensor> {
        let y = k::local_response_norm(&self.data(), self.dims(), params)?;
        let (x, p) = (self.clone(), *params);
        Tensor::record(
            "local_response_norm",
            Arc::new(y),
            self.shape().clone(),
            &[self],
            move |ctx| {
                Ok(vec![Some(k::local_response_norm_backward(
                    ctx.grad(),
                    &x.data(),
                    x.dims(),
                    &p,
                )?)])
            },
        )
    }
}

/// Checks that the affine parameters and the running statistics, where given, are `[C]` for
/// `x`'s `C` channels.
fn check_operands(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running: Option<&RunningStats<'_>>,
) -> Result<()> {
    check_channel("weight", x, weight)?;
    check_channel("bias", x, bias)?;
    if let Some(r) = running {
        check_channel("running mean", x, Some(r.mean))?;
        check_channel("running variance", x, Some(r.var))?;
    }
    Ok(())
}
