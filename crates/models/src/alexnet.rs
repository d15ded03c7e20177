//! AlexNet: torchvision's single-tower version, and Krizhevsky et al. 2012 as published.

use ventral_nn::layers::{AdaptiveAvgPool2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU};
use ventral_nn::{Conv2dParams, Init, LrnParams, MaxPool2dParams, Module, Result, Tensor};

use crate::common::{WeightInit, conv};
use crate::summary::{Chain, chain, forward_child};

/// Which AlexNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Torchvision,
    Paper,
}

/// AlexNet. [`AlexNet::new`] is torchvision's (from Krizhevsky's 2014 "one weird trick":
/// 64-192-384-256-256 filters, no LRN, adaptive 6x6 pool; 61,100,840 parameters);
/// [`AlexNet::paper`] is the 2012 network as published (96-256-384-384-256 filters, conv2/4/5
/// grouped in two as the two GPUs split them, local response normalisation after conv1 and
/// conv2, 227x227 input; 60,965,224 parameters). Both use PyTorch's default initialisation,
/// as `zoo_defs.py` does. Keys `features.{i}.*`, `classifier.{1,4,6}.*`.
///
/// # Shapes
/// - input `[N, 3, 224, 224]` (torchvision) or `[N, 3, 227, 227]` (paper)
/// - output `[N, num_classes]` (logits)
pub struct AlexNet {
    features: Chain,
    avgpool: Option<AdaptiveAvgPool2d>,
    classifier: Chain,
    variant: Variant,
}

fn pool() -> MaxPool2d {
    MaxPool2d::with_params(MaxPool2dParams::square(3).with_stride((2, 2)))
}

fn classifier(num_classes: usize, init: &mut Init) -> Result<Chain> {
    Ok(chain()
        .push(Dropout::new(0.5, init.next_seed())?)
        .push(Linear::new(256 * 6 * 6, 4096, true, init)?)
        .push(ReLU)
        .push(Dropout::new(0.5, init.next_seed())?)
        .push(Linear::new(4096, 4096, true, init)?)
        .push(ReLU)
        .push(Linear::new(4096, num_classes, true, init)?))
}

impl AlexNet {
    /// torchvision's AlexNet.
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn new(num_classes: usize, seed: u64) -> Result<Self> {
        Self::adapted(Variant::Torchvision, 3, num_classes, seed)
    }

    /// torchvision's (`paper: false`) or the 2012 AlexNet with `features.0` taking
    /// `in_channels` channels (the registry's `--in-channels`).
    pub(crate) fn adapted_as(
        paper: bool,
        in_channels: usize,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        let variant = if paper {
            Variant::Paper
        } else {
            Variant::Torchvision
        };
        Self::adapted(variant, in_channels, num_classes, seed)
    }

    fn adapted(variant: Variant, cin: usize, num_classes: usize, seed: u64) -> Result<Self> {
        match variant {
            Variant::Torchvision => Self::torchvision(cin, num_classes, seed),
            Variant::Paper => Self::published(cin, num_classes, seed),
        }
    }

    fn torchvision(cin: usize, num_classes: usize, seed: u64) -> Result<Self> {
        let init = &mut Init::new(seed);
        let p = Conv2dParams::default();
        let d = WeightInit::PytorchDefault;
        let features = chain()
            .push(conv((cin, 64), 11, p.stride(4).padding(2), true, d, init)?)
            .push(ReLU)
            .push(pool())
            .push(conv((64, 192), 5, p.padding(2), true, d, init)?)
            .push(ReLU)
            .push(pool())
            .push(conv((192, 384), 3, p.padding(1), true, d, init)?)
            .push(ReLU)
            .push(conv((384, 256), 3, p.padding(1), true, d, init)?)
            .push(ReLU)
            .push(conv((256, 256), 3, p.padding(1), true, d, init)?)
            .push(ReLU)
            .push(pool());
        Ok(Self {
            features,
            avgpool: Some(AdaptiveAvgPool2d::new((6, 6))),
            classifier: classifier(num_classes, init)?,
            variant: Variant::Torchvision,
        })
    }

    /// Krizhevsky et al. 2012 as published (`AlexNetPaper` in `zoo_defs.py`): LRN with
    /// size 5, α = 1e-4, β = 0.75, k = 2.
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn paper(num_classes: usize, seed: u64) -> Result<Self> {
        Self::adapted(Variant::Paper, 3, num_classes, seed)
    }

    fn published(cin: usize, num_classes: usize, seed: u64) -> Result<Self> {
        let init = &mut Init::new(seed);
        let p = Conv2dParams::default();
        let d = WeightInit::PytorchDefault;
        let lrn = || {
            LocalResponseNorm::new(
                LrnParams::new(5)
                    .with_alpha(1e-4)
                    .with_beta(0.75)
                    .with_k(2.0),
            )
        };
        let features = chain()
            .push(conv((cin, 96), 11, p.stride(4), true, d, init)?)
            .push(ReLU)
            .push(lrn())
            .push(pool())
            .push(conv((96, 256), 5, p.padding(2).groups(2), true, d, init)?)
            .push(ReLU)
            .push(lrn())
            .push(pool())
            .push(conv((256, 384), 3, p.padding(1), true, d, init)?)
            .push(ReLU)
            .push(conv((384, 384), 3, p.padding(1).groups(2), true, d, init)?)
            .push(ReLU)
            .push(conv((384, 256), 3, p.padding(1).groups(2), true, d, init)?)
            .push(ReLU)
            .push(pool());
        Ok(Self {
            features,
            avgpool: None,
            classifier: classifier(num_classes, init)?,
            variant: Variant::Paper,
        })
    }
}

impl Module for AlexNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, 3, 224, 224] (paper: [N, 3, 227, 227])
        let mut x = forward_child(&self.features, "features", x)?; // [N, 256, 6, 6]
        if let Some(pool) = &self.avgpool {
            x = forward_child(pool, "avgpool", &x)?; // [N, 256, 6, 6]
        }
        let x = x.flatten(1, 3)?; // [N, 9216]
        forward_child(&self.classifier, "classifier", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("features", &mut self.features);
        f("classifier", &mut self.classifier);
    }

    fn describe(&self) -> String {
        match self.variant {
            Variant::Torchvision => "AlexNet".into(),
            Variant::Paper => "AlexNetPaper".into(),
        }
    }
}
