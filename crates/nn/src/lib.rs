//! Ventral's `nn` layer: what a model author uses — layers with PyTorch's names and defaults,
//! initialisation, losses and optimizers on top of `ventral-autograd`, plus datasets,
//! loaders and safetensors checkpoints.
//!
//! `Tensor`, `Shape` and this crate's `Error` and `Result` are re-exported here, so a model
//! crate depends on `ventral-nn` alone.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod data;
mod error;
pub mod init;
pub mod layers;
pub mod loss;
mod module;
pub mod optim;

pub use error::{Error, Result};
pub use init::Init;
pub use module::{
    Mode, Module, Slot, forward_named, join, load_state_dict, named_parameters, parameter_count,
    state_dict, state_dict_layout,
};
pub use optim::Optimizer;
pub use ventral_autograd::{
    AvgPool2dParams, Conv2dParams, Gradients, LrnParams, MaxPool2dParams, Shape, Tensor, no_grad,
};
