//! The zoo by name: what `ventral train --model NAME` can build and `ventral models` lists.

use ventral_nn::{Error, Module, Result};

use crate::alexnet::AlexNet;
use crate::googlenet::{AuxLogits, GoogLeNet};
use crate::lenet::LeNet5;
use crate::lenet_paper::LeNet5Paper;
use crate::linear::LinearClassifier;
use crate::mlp::Mlp;
use crate::resnet::ResNet;
use crate::resnet_cifar::CifarResNet;
use crate::vgg::{Norm, Vgg};

/// How a model learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Training {
    /// A [`Module`] trained by backpropagation and an optimizer; [`build`] makes it.
    Autograd,
    /// A classic with its own learning rule (see [`crate::classic`]); not a [`Module`].
    OwnRule,
}

/// One line of the zoo: name, year, paper, input shape and default class count.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// The name the CLI accepts.
    pub name: &'static str,
    /// Year of the paper.
    pub year: u16,
    /// The paper it follows.
    pub paper: &'static str,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Classes when none are given.
    pub default_classes: usize,
    /// How it learns.
    pub training: Training,
}

const fn info(
    name: &'static str,
    year: u16,
    paper: &'static str,
    input: [usize; 3],
    default_classes: usize,
    training: Training,
) -> ModelInfo {
    ModelInfo {
        name,
        year,
        paper,
        input,
        default_classes,
        training,
    }
}

const ROSENBLATT: &str = "Rosenblatt, The perceptron: a probabilistic model for information \
                          storage and organization in the brain";
const WIDROW_HOFF: &str = "Widrow & Hoff, Adaptive switching circuits";
const MADALINE: &str = "Widrow, Generalization and information storage in networks of \
                        Adaline neurons (Madaline Rule I, Ridgway)";
const SVM: &str = "Weston & Watkins, Support vector machines for multi-class pattern recognition";
const BACKPROP: &str = "Rumelhart, Hinton & Williams, Learning representations by \
                        back-propagating errors";
const LECUN: &str = "LeCun et al., Gradient-based learning applied to document recognition";
const ALEX: &str = "Krizhevsky, Sutskever & Hinton, ImageNet classification with deep \
                    convolutional neural networks";
const ALEX_TV: &str = "Krizhevsky, One weird trick for parallelizing convolutional neural \
                       networks (torchvision's AlexNet)";
const VGG: &str = "Simonyan & Zisserman, Very deep convolutional networks for large-scale \
                   image recognition";
const VGG_BN: &str = "Simonyan & Zisserman 2014, with batch norm (Ioffe & Szegedy 2015)";
const GOOGLENET: &str = "Szegedy et al., Going deeper with convolutions";
const RESNET: &str = "He et al., Deep residual learning for image recognition";
const RESNET_CIFAR: &str = "He et al., Deep residual learning for image recognition (§4.2, \
                            CIFAR-10, option A)";

const IMAGENET: [usize; 3] = [3, 224, 224];
const CIFAR: [usize; 3] = [3, 32, 32];
const MNIST: [usize; 3] = [1, 28, 28];
const A: Training = Training::Autograd;

const ZOO: &[ModelInfo] = &[
    info(
        "perceptron",
        1958,
        ROSENBLATT,
        [1, 20, 20],
        10,
        Training::OwnRule,
    ),
    info("adaline", 1960, WIDROW_HOFF, MNIST, 10, Training::OwnRule),
    info("madaline", 1962, MADALINE, MNIST, 10, Training::OwnRule),
    info("linear", 1999, SVM, MNIST, 10, A),
    info("mlp", 1986, BACKPROP, MNIST, 10, A),
    info("lenet5", 1998, LECUN, MNIST, 10, A),
    info("lenet5_paper", 1998, LECUN, [1, 32, 32], 10, A),
    info("alexnet", 2014, ALEX_TV, IMAGENET, 1000, A),
    info("alexnet_paper", 2012, ALEX, [3, 227, 227], 1000, A),
    info("vgg11", 2014, VGG, IMAGENET, 1000, A),
    info("vgg11_bn", 2015, VGG_BN, IMAGENET, 1000, A),
    info("vgg13", 2014, VGG, IMAGENET, 1000, A),
    info("vgg13_bn", 2015, VGG_BN, IMAGENET, 1000, A),
    info("vgg16", 2014, VGG, IMAGENET, 1000, A),
    info("vgg16_bn", 2015, VGG_BN, IMAGENET, 1000, A),
    info("vgg19", 2014, VGG, IMAGENET, 1000, A),
    info("vgg19_bn", 2015, VGG_BN, IMAGENET, 1000, A),
    info("vgg11_cifar", 2015, VGG_BN, CIFAR, 10, A),
    info("googlenet", 2014, GOOGLENET, IMAGENET, 1000, A),
    info("resnet18", 2016, RESNET, IMAGENET, 1000, A),
    info("resnet34", 2016, RESNET, IMAGENET, 1000, A),
    info("resnet50", 2016, RESNET, IMAGENET, 1000, A),
    info("resnet101", 2016, RESNET, IMAGENET, 1000, A),
    info("resnet152", 2016, RESNET, IMAGENET, 1000, A),
    info("resnet20", 2016, RESNET_CIFAR, CIFAR, 10, A),
    info("resnet32", 2016, RESNET_CIFAR, CIFAR, 10, A),
    info("resnet44", 2016, RESNET_CIFAR, CIFAR, 10, A),
    info("resnet56", 2016, RESNET_CIFAR, CIFAR, 10, A),
    info("resnet110", 2016, RESNET_CIFAR, CIFAR, 10, A),
];

/// Hidden layer size of the registry's `mlp` (the lecture's 2-layer net uses 100).
const MLP_HIDDEN: usize = 100;

/// Every model in the zoo, oldest idea first.
pub fn models() -> &'static [ModelInfo] {
    ZOO
}

/// The zoo entry called `name`.
pub fn find(name: &str) -> Option<&'static ModelInfo> {
    ZOO.iter().find(|m| m.name == name)
}

fn unknown(name: &str) -> Error {
    Error::config(
        "model",
        format!(
            "unknown model `{name}`; valid models: {}",
            ZOO.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        ),
    )
}

/// Builds model `name` for its registry input with `num_classes` outputs, from `seed`.
///
/// # Errors
/// [`Error::Config`] naming the valid models if `name` is unknown, or saying where to find a
/// classic (they are not [`Module`]s).
pub fn build(name: &str, num_classes: usize, seed: u64) -> Result<Box<dyn Module>> {
    let info = find(name).ok_or_else(|| unknown(name))?;
    build_for_input(name, info.input, num_classes, seed)
}

/// Builds model `name` for inputs of shape `input` (`[C, H, W]`). Only the fully connected
/// models (`linear`, `mlp`) size themselves from it (`C·H·W` inputs); the convolutional
/// networks have fixed input channels and accept the sizes their docs state.
///
/// # Errors
/// As [`build`].
pub fn build_for_input(
    name: &str,
    input: [usize; 3],
    num_classes: usize,
    seed: u64,
) -> Result<Box<dyn Module>> {
    let info = find(name).ok_or_else(|| unknown(name))?;
    if info.training == Training::OwnRule {
        return Err(Error::config(
            "model",
            format!(
                "`{name}` learns by its own rule, not by autograd: use \
                 ventral_models::classic (Perceptron, Adaline, Madaline, OneVsRest)"
            ),
        ));
    }
    let features = input.iter().product();
    Ok(match name {
        "linear" => Box::new(LinearClassifier::new(features, num_classes, seed)?),
        "mlp" => Box::new(Mlp::new(features, &[MLP_HIDDEN], num_classes, seed)?),
        "lenet5" => Box::new(LeNet5::new(num_classes, seed)?),
        "lenet5_paper" => Box::new(LeNet5Paper::new(num_classes, seed)?),
        "alexnet" => Box::new(AlexNet::new(num_classes, seed)?),
        "alexnet_paper" => Box::new(AlexNet::paper(num_classes, seed)?),
        "vgg11_cifar" => Box::new(Vgg::cifar11(num_classes, seed)?),
        "googlenet" => Box::new(GoogLeNet::new(num_classes, AuxLogits::Without, seed)?),
        vgg if vgg.starts_with("vgg") => {
            let (depth, norm) = match vgg.strip_suffix("_bn") {
                Some(d) => (d, Norm::Batch),
                None => (vgg, Norm::None),
            };
            let depth = depth[3..].parse().map_err(|_| unknown(name))?;
            Box::new(Vgg::new(depth, norm, num_classes, seed)?)
        }
        resnet if resnet.starts_with("resnet") => {
            let depth: usize = resnet[6..].parse().map_err(|_| unknown(name))?;
            if info.input == [3, 32, 32] {
                Box::new(CifarResNet::new(depth, num_classes, seed)?)
            } else {
                Box::new(ResNet::new(depth, num_classes, seed)?)
            }
        }
        _ => return Err(unknown(name)),
    })
}
