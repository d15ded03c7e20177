//! Ventral's `autograd` layer: a [`Tensor`] of shared f32 storage that records the ops
//! applied to it (define-by-run), reverse-mode differentiation into a [`Gradients`] store
//! kept outside the tensors, and [`gradcheck`] to prove each op's backward right.
//!
//! The lecture's example, `f(x, y, z) = (x + y) · z` at `x = -2`, `y = 5`, `z = -4`: the
//! forward pass gives `q = x + y = 3` and `f = q · z = -12`. Backward: `∂f/∂z = q = 3`,
//! `∂f/∂q = z = -4`, and the add gate routes `∂f/∂q` unchanged to both of its inputs, so
//! `∂f/∂x = ∂f/∂y = -4`.
//!
//! ```
//! use ventral_autograd::Tensor;
//!
//! let x = Tensor::scalar(-2.0).with_grad();
//! let y = Tensor::scalar(5.0).with_grad();
//! let z = Tensor::scalar(-4.0).with_grad();
//! let f = &(&x + &y) * &z;
//! assert_eq!(f.item()?, -12.0);
//! let grads = f.backward()?;
//! assert_eq!(grads.get(&x).unwrap().item()?, -4.0);
//! assert_eq!(grads.get(&y).unwrap().item()?, -4.0);
//! assert_eq!(grads.get(&z).unwrap().item()?, 3.0);
//! # Ok::<(), ventral_autograd::Error>(())
//! ```
//!
//! # Design
//! - Each op is a method (or, for losses and [`concat()`], a function) in `src/ops/<family>.rs`
//!   that runs a kernel forward and records, through [`Tensor::from_op`], a closure that
//!   computes its inputs' gradients. There is no central op enum.
//! - [`Tensor::backward`] sorts the graph topologically and runs the closures in reverse,
//!   adding into a [`Gradients`] store keyed by [`TensorId`]; leaf gradients accumulate
//!   across calls until cleared. The graph is freed as it is used ([`live_nodes`] counts
//!   nodes, for leak tests).
//! - [`no_grad`] turns recording off, [`Tensor::detach`] cuts a tensor from its graph,
//!   [`AnomalyMode`] fails the first op producing NaN/inf, [`Scope`] names ops (a layer
//!   path) for those errors and for [`to_dot`]; [`profile`] times each op's forward and
//!   backward when enabled.
//! - Everything runs on the calling thread apart from the kernels' own threads, in a fixed
//!   order: the same inputs give the same bits.
#![forbid(unsafe_code)]

mod backward;
pub mod conv_weights;
mod dot;
mod error;
mod gradcheck;
mod graph;
mod ops;
pub mod profile;
mod shape;
mod tensor;

pub use backward::{BackwardOptions, Gradients};
pub use dot::to_dot;
pub use error::{Error, Phase, Result};
pub use gradcheck::{
    GradcheckCase, GradcheckOptions, GradcheckReport, InputReport, distinct_values, failing_cases,
    gradcheck, gradcheck_cases, scale_gradient, uncaught_mutations,
};
pub use graph::{
    AnomalyMode, BackwardFn, GradContext, InputGrads, NoGradGuard, Scope, is_grad_enabled,
    live_nodes, no_grad,
};
pub use ops::{
    AvgPool2dParams, BatchNormOptions, Conv2dParams, LrnParams, MarginNormalization,
    MaxPool2dParams, Mode, RunningStats, concat, cross_entropy, mse_loss, multi_margin_loss,
    nll_loss,
};
pub use shape::Shape;
pub use tensor::{Tensor, TensorId, ValuesStamp};
/// Seeded randomness (generators, per-purpose streams): the kernels' [`ventral_kernels::rng`],
/// re-exported so layers and models reach it without naming the kernels crate.
pub use ventral_kernels::rng;
