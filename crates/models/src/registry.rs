//! The zoo by name: what `ventral train --model NAME` can build and `ventral models` lists.

use ventral_nn::{Error, Module, Result};

use crate::alexnet::AlexNet;
use crate::googlenet::{AuxLogits, GoogLeNet};
use crate::lenet::{Activation, LeNet5, Pooling};
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

/// How to build a zoo model: the classifier's outputs, and optionally the samples it takes
/// and the channels of its stem — the knobs timm calls `num_classes` and `in_chans`.
///
/// Adapting changes two layers only: the stem's first convolution (or, in the fully
/// connected models, the first linear layer) takes `in_channels`, and the classifier head
/// gives `num_classes` outputs. Every other parameter keeps its torchvision state-dict name
/// and shape, so weights trained for the original input load into everything but those two
/// layers (see `ventral_nn::load_state_dict_partial`).
///
/// ```
/// use ventral_models::{ModelOptions, build_with};
/// use ventral_nn::{Module, Tensor};
///
/// // ResNet-20 for Fashion-MNIST: one input channel, 28x28 (global average pooling takes it).
/// let net = build_with("resnet20", &ModelOptions::new(10).in_channels(1), 0)?;
/// assert_eq!(net.forward(&Tensor::zeros([2, 1, 28, 28])?)?.dims(), [2, 10]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    /// Outputs of the classifier head.
    pub num_classes: usize,
    /// Channels the stem takes; `None`: the zoo's (the channels of [`ModelInfo::input`], or
    /// of [`ModelOptions::input`] for the fully connected models).
    pub in_channels: Option<usize>,
    /// The samples' `[C, H, W]`; `None`: the zoo's [`ModelInfo::input`]. Only the fully
    /// connected models (`linear`, `mlp`) size themselves from it (`C·H·W` inputs); the
    /// convolutional networks accept the sizes their docs state whatever it says.
    pub input: Option<[usize; 3]>,
}

impl ModelOptions {
    /// The zoo's model with `num_classes` outputs.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            in_channels: None,
            input: None,
        }
    }

    /// The stem takes `channels` channels instead of the zoo's.
    #[must_use]
    pub fn in_channels(mut self, channels: usize) -> Self {
        self.in_channels = Some(channels);
        self
    }

    /// Samples of shape `[C, H, W]` (sizes the fully connected models).
    #[must_use]
    pub fn input(mut self, shape: [usize; 3]) -> Self {
        self.input = Some(shape);
        self
    }
}

/// Builds model `name` for its registry input with `num_classes` outputs, from `seed`.
///
/// # Errors
/// [`Error::Config`] naming the valid models if `name` is unknown, or saying where to find a
/// classic (they are not [`Module`]s).
pub fn build(name: &str, num_classes: usize, seed: u64) -> Result<Box<dyn Module>> {
    build_with(name, &ModelOptions::new(num_classes), seed)
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
    build_with(name, &ModelOptions::new(num_classes).input(input), seed)
}

/// Builds model `name` as `options` say, from `seed`. With the zoo's channels, the model is
/// the one [`build`] gives, bit for bit.
///
/// # Errors
/// As [`build`]; [`Error::Config`] if `num_classes` or `in_channels` is zero.
pub fn build_with(name: &str, options: &ModelOptions, seed: u64) -> Result<Box<dyn Module>> {
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
    let classes = options.num_classes;
    if classes == 0 {
        return Err(Error::config(
            "model",
            format!("`{name}` needs at least one class, got 0"),
        ));
    }
    let input = options.input.unwrap_or(info.input);
    let cin = options.in_channels.unwrap_or(match name {
        "linear" | "mlp" => input[0],
        _ => info.input[0],
    });
    if cin == 0 {
        return Err(Error::config(
            "model",
            format!("`{name}` needs at least one input channel, got 0"),
        ));
    }
    let features = cin * input[1] * input[2];
    Ok(match name {
        "linear" => Box::new(LinearClassifier::new(features, classes, seed)?),
        "mlp" => Box::new(Mlp::new(features, &[MLP_HIDDEN], classes, seed)?),
        "lenet5" => Box::new(LeNet5::adapted(
            cin,
            classes,
            Activation::Relu,
            Pooling::Max,
            seed,
        )?),
        "lenet5_paper" => Box::new(LeNet5Paper::adapted(cin, classes, seed)?),
        "alexnet" => Box::new(AlexNet::adapted_as(false, cin, classes, seed)?),
        "alexnet_paper" => Box::new(AlexNet::adapted_as(true, cin, classes, seed)?),
        "vgg11_cifar" => Box::new(Vgg::cifar11_adapted(cin, classes, seed)?),
        "googlenet" => Box::new(GoogLeNet::adapted(cin, classes, AuxLogits::Without, seed)?),
        vgg if vgg.starts_with("vgg") => {
            let (depth, norm) = match vgg.strip_suffix("_bn") {
                Some(d) => (d, Norm::Batch),
                None => (vgg, Norm::None),
            };
            let depth = depth[3..].parse().map_err(|_| unknown(name))?;
            Box::new(Vgg::adapted(depth, norm, cin, classes, seed)?)
        }
        resnet if resnet.starts_with("resnet") => {
            let depth: usize = resnet[6..].parse().map_err(|_| unknown(name))?;
            if info.input == [3, 32, 32] {
                Box::new(CifarResNet::adapted(depth, cin, classes, seed)?)
            } else {
                Box::new(ResNet::adapted_depth(depth, cin, classes, seed)?)
            }
        }
        _ => return Err(unknown(name)),
    })
}
