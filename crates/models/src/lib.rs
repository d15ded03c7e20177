//! Ventral's model zoo: the networks of the field's history, each usable as a library value
//! and trainable from the command line, with torchvision's parameter names and counts.
//!
//! - The classics with their own learning rules: [`classic`] (perceptron, Adaline,
//!   Madaline, one-vs-rest).
//! - Networks trained by autograd: [`LinearClassifier`], [`Mlp`], [`LeNet5`],
//!   [`LeNet5Paper`], [`AlexNet`], [`Vgg`], [`GoogLeNet`], [`ResNet`] (with the public
//!   [`BasicBlock`] and [`Bottleneck`]), [`CifarResNet`].
//! - [`summary()`]: a per-layer table of any model; [`models()`] and [`build()`]: the zoo by
//!   name.
#![forbid(unsafe_code)]

mod alexnet;
pub mod classic;
mod common;
mod googlenet;
mod lenet;
mod lenet_paper;
mod linear;
mod mlp;
mod registry;
mod resnet;
mod resnet_cifar;
mod summary;
mod vgg;

pub use alexnet::AlexNet;
pub use googlenet::{AuxLogits, BasicConv2d, GoogLeNet, Inception, InceptionAux};
pub use lenet::{Activation, LeNet5, Pooling};
pub use lenet_paper::LeNet5Paper;
pub use linear::LinearClassifier;
pub use mlp::Mlp;
pub use registry::{
    ModelInfo, ModelOptions, Training, build, build_for_input, build_with, find, models,
};
pub use resnet::{BasicBlock, Block, Bottleneck, ResNet};
pub use resnet_cifar::{CifarBasicBlock, CifarResNet};
pub use summary::{
    Chain, LayerRow, Summary, capture_output, chain, forward_child, record_macs, summary,
};
pub use vgg::{Norm, Vgg};
