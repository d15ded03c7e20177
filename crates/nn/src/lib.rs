//! Ventral's `nn` layer: what a model author uses — layers with PyTorch's names and defaults,
//! initialisation, losses and optimizers on top of `ventral-autograd`, plus datasets,
//! loaders and safetensors checkpoints.
//!
//! `Tensor`, `Shape` and this crate's `Error` and `Result` are re-exported here, so a model
//! crate depends on `ventral-nn` alone.
//!
//! # Example: a 2-layer MLP trained with SGD
//!
//! Four points of two classes (the class is the sign of the first coordinate), a
//! `Linear(2→8) → ReLU → Linear(8→2)` network, and a few steps of gradient descent on the
//! cross-entropy: the loss goes down.
//!
//! ```
//! use ventral_nn::layers::{Linear, ReLU, Sequential};
//! use ventral_nn::loss::cross_entropy;
//! use ventral_nn::optim::{Optimizer, Sgd, SgdConfig};
//! use ventral_nn::{Init, Module, Tensor};
//!
//! let mut init = Init::new(0);
//! let mut model = Sequential::new()
//!     .push(Linear::new(2, 8, true, &mut init)?) // [4, 8]
//!     .push(ReLU) // [4, 8]
//!     .push(Linear::new(8, 2, true, &mut init)?); // [4, 2]
//! let x = Tensor::from_vec(vec![1.0, 0.5, 2.0, -1.0, -1.5, 0.3, -0.5, -2.0], [4, 2])?;
//! let y = [1, 1, 0, 0];
//! let mut opt = Sgd::new(SgdConfig::new(0.2))?;
//!
//! let mut losses = Vec::new();
//! for _ in 0..20 {
//!     let loss = cross_entropy(&model.forward(&x)?, &y, 0.0)?;
//!     losses.push(loss.item()?);
//!     let grads = loss.backward()?;
//!     opt.step(&mut model, &grads)?; // the lecture's `weights += -step_size * weights_grad`
//! }
//! assert!(losses[19] < 0.5 * losses[0], "{losses:?}");
//! # Ok::<(), ventral_nn::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod data;
mod error;
mod freeze;
pub mod init;
pub mod layers;
pub mod limits;
pub mod loss;
pub mod metrics;
mod module;
pub mod optim;
mod partial;

pub use error::{Error, Result};
pub use freeze::{Frozen, under_prefix};
pub use init::Init;
pub use module::{
    Mode, Module, Slot, forward_named, join, load_state_dict, load_training_state, modes,
    named_parameters, parameter_count, state_dict, state_dict_layout, training_state,
};
pub use optim::Optimizer;
pub use partial::{LoadReport, load_state_dict_partial};
/// Seeded randomness: one home for generators and per-purpose streams (from the kernels crate).
pub use ventral_autograd::rng;
pub use ventral_autograd::{
    AvgPool2dParams, Conv2dParams, Gradients, LrnParams, MaxPool2dParams, Shape, Tensor, concat,
    no_grad,
};
