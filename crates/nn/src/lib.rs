//! Ventral's `nn` layer: what a model author uses — datasets and loaders, checkpoints, and
//! (arriving with their issue) layers, losses and optimizers on top of `ventral-autograd`.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod data;
