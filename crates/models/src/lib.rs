//! Ventral's model zoo: the networks of the field's history, each usable as a library value
//! and trainable from the command line, with torchvision's parameter names and counts.
#![forbid(unsafe_code)]

mod lenet;
mod registry;

pub use lenet::{Activation, LeNet5, Pooling};
pub use registry::{ModelInfo, build, models};
