//! torchvision's VGG (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for
//! Large-Scale Image Recognition"), with and without batch norm, and VGG-11 for 32x32 images.

use ventral_nn::layers::{AdaptiveAvgPool2d, Dropout, Linear, MaxPool2d, ReLU};
use ventral_nn::{Conv2dParams, Error, Init, Module, Result, Tensor};

use crate::common::{WeightInit, bn, conv, linear};
use crate::summary::{Chain, chain, forward_child};

/// Whether each convolution is followed by batch norm (`vgg11` vs `vgg11_bn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Norm {
    /// Convolution → ReLU.
    #[default]
    None,
    /// Convolution → BatchNorm2d → ReLU.
    Batch,
}

/// Convolution widths per configuration, `0` marking a 2x2 max pool (torchvision's `"M"`).
fn config(depth: usize) -> Result<&'static [usize]> {
    Ok(match depth {
        11 => &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        13 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
        ],
        16 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ],
        19 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512,
            512, 0,
        ],
        _ => {
            return Err(Error::config(
                "VGG",
                format!("depth {depth} is not one of 11, 13, 16, 19"),
            ));
        }
    })
}

/// torchvision's `make_layers`: 3x3 convolutions (padding 1, bias, Kaiming-normal fan-out,
/// bias 0), optional batch norm, ReLU, and 2x2 max pools.
fn features(depth: usize, norm: Norm, in_channels: usize, init: &mut Init) -> Result<Chain> {
    let mut chain = chain();
    let mut cin = in_channels;
    for &width in config(depth)? {
        if width == 0 {
            chain.push_boxed(Box::new(MaxPool2d::new(2)));
            continue;
        }
        let p = Conv2dParams::default().padding(1);
        chain.push_boxed(Box::new(conv(
            (cin, width),
            3,
            p,
            true,
            WeightInit::KaimingFanOut,
            init,
        )?));
        if norm == Norm::Batch {
            chain.push_boxed(Box::new(bn(width)?));
        }
        chain.push_boxed(Box::new(ReLU));
        cin = width;
    }
    Ok(chain)
}

/// VGG: `features` (the convolutions), then for ImageNet an adaptive 7x7 average pool and
/// the classifier `Linear(25088, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU →
/// Dropout → Linear(4096, classes)` (weights N(0, 0.01), biases 0, as torchvision), or for
/// [`Vgg::cifar11`] a single `Linear(512, classes)`. Keys `features.{i}.*`,
/// `classifier.{0,3,6}.*` (or `classifier.*`). 132,863,336 parameters for VGG-11.
///
/// # Shapes
/// - input `[N, 3, 224, 224]` (ImageNet) or `[N, 3, 32, 32]` ([`Vgg::cifar11`])
/// - output `[N, num_classes]` (logits)
pub struct Vgg {
    features: Chain,
    avgpool: Option<AdaptiveAvgPool2d>,
    classifier: Box<dyn Module>,
    name: String,
}

impl Vgg {
    /// VGG-`depth` (11, 13, 16, 19) for 224x224 images, with or without batch norm.
    ///
    /// # Errors
    /// For another depth, or zero classes.
    pub fn new(depth: usize, norm: Norm, num_classes: usize, seed: u64) -> Result<Self> {
        Self::adapted(depth, norm, 3, num_classes, seed)
    }

    /// [`Vgg::new`] with `features.0` taking `in_channels` channels (the registry's
    /// `--in-channels`).
    pub(crate) fn adapted(
        depth: usize,
        norm: Norm,
        in_channels: usize,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        let init = &mut Init::new(seed);
        let features = features(depth, norm, in_channels, init)?;
        let how = WeightInit::Normal(0.01);
        let classifier = chain()
            .push(linear((512 * 7 * 7, 4096), how, init)?)
            .push(ReLU)
            .push(Dropout::new(0.5, init.next_seed())?)
            .push(linear((4096, 4096), how, init)?)
            .push(ReLU)
            .push(Dropout::new(0.5, init.next_seed())?)
            .push(linear((4096, num_classes), how, init)?);
        let suffix = if norm == Norm::Batch { "_bn" } else { "" };
        Ok(Self {
            features,
            avgpool: Some(AdaptiveAvgPool2d::new((7, 7))),
            classifier: Box::new(classifier),
            name: format!("VGG{depth}{suffix}"),
        })
    }

    /// VGG-11 with batch norm for 32x32 images (`vgg11_cifar` in `zoo_defs.py`): the five
    /// pools take 32x32 to 1x1, so the 512 features go straight to one
    /// `Linear(512, classes)` (PyTorch's default initialisation). 9,231,114 parameters with
    /// 10 classes.
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn cifar11(num_classes: usize, seed: u64) -> Result<Self> {
        Self::cifar11_adapted(3, num_classes, seed)
    }

    /// [`Vgg::cifar11`] with `features.0` taking `in_channels` channels.
    pub(crate) fn cifar11_adapted(
        in_channels: usize,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        let init = &mut Init::new(seed);
        let features = features(11, Norm::Batch, in_channels, init)?;
        Ok(Self {
            features,
            avgpool: None,
            classifier: Box::new(Linear::new(512, num_classes, true, init)?),
            name: "VGG11Cifar".into(),
        })
    }
}

impl Module for Vgg {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, 3, 224, 224] (or [N, 3, 32, 32] for cifar11)
        let mut x = forward_child(&self.features, "features", x)?; // [N, 512, 7, 7] (or [N, 512, 1, 1])
        if let Some(pool) = &self.avgpool {
            x = forward_child(pool, "avgpool", &x)?; // [N, 512, 7, 7]
        }
        let x = x.flatten(1, 3)?; // [N, 25088] (or [N, 512])
        forward_child(self.classifier.as_ref(), "classifier", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("features", &mut self.features);
        f("classifier", self.classifier.as_mut());
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
