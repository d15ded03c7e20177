//! The CIFAR-10 ResNets of He et al. 2016 §4.2: ResNet-20/32/44/56/110.

use ventral_nn::layers::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear};
use ventral_nn::{Conv2dParams, Error, Init, Module, Result, Tensor};

use crate::common::{WeightInit, bn, conv, conv_bn, residual_relu};
use crate::summary::{Chain, chain, forward_child};

/// The CIFAR ResNets' block: two 3x3 convolutions with batch norm and an *option A* shortcut
/// — identity, or when the size changes `x[:, :, ::2, ::2]` with zero channels added — so the
/// shortcut has no parameters. Keys `conv1.weight`, `bn1.*`, `conv2.weight`, `bn2.*`.
///
/// # Shapes
/// - input `[N, inplanes, H, W]`
/// - output `[N, planes, ⌈H / stride⌉, ⌈W / stride⌉]`
pub struct CifarBasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    planes: usize,
    stride: usize,
    inplanes: usize,
}

impl CifarBasicBlock {
    /// A block from `inplanes` to `planes` channels (`planes ≥ inplanes`), the first
    /// convolution strided.
    ///
    /// # Errors
    /// If a size is zero or `planes < inplanes`.
    pub fn new(inplanes: usize, planes: usize, stride: usize, init: &mut Init) -> Result<Self> {
        if planes < inplanes {
            return Err(Error::config(
                "CifarBasicBlock",
                format!("option A can only add channels, not go from {inplanes} to {planes}"),
            ));
        }
        let p = |s: usize| Conv2dParams::default().stride(s).padding(1);
        Ok(Self {
            conv1: conv(
                (inplanes, planes),
                3,
                p(stride),
                false,
                WeightInit::KaimingFanOut,
                init,
            )?,
            bn1: bn(planes)?,
            conv2: conv(
                (planes, planes),
                3,
                p(1),
                false,
                WeightInit::KaimingFanOut,
                init,
            )?,
            bn2: bn(planes)?,
            planes,
            stride,
            inplanes,
        })
    }
}

impl Module for CifarBasicBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, inplanes, H, W]
        let y = conv_bn((&self.conv1, "conv1"), (&self.bn1, "bn1"), true, x)?; // [N, planes, H/s, W/s]
        let y = conv_bn((&self.conv2, "conv2"), (&self.bn2, "bn2"), false, &y)?; // [N, planes, H/s, W/s]
        let s = if self.stride != 1 || self.planes != self.inplanes {
            x.shortcut_option_a(self.planes, self.stride)? // [N, planes, H/s, W/s]
        } else {
            x.clone()
        };
        residual_relu(&y, &s) // [N, planes, H/s, W/s]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv1", &mut self.conv1);
        f("bn1", &mut self.bn1);
        f("conv2", &mut self.conv2);
        f("bn2", &mut self.bn2);
    }

    fn describe(&self) -> String {
        format!(
            "CifarBasicBlock({}→{}, stride {})",
            self.inplanes, self.planes, self.stride
        )
    }
}

/// ResNet-`6n+2` for 32x32 images (He et al. 2016 §4.2): a 3x3 convolution to 16 channels,
/// three stages of `n` blocks at 16, 32 and 64 channels (32x32, 16x16, 8x8), global average
/// pooling and a fully connected layer; option-A shortcuts, so all parameters are in the
/// convolutions, batch norms and the classifier (269,722 for ResNet-20 with 10 classes).
/// Convolutions are Kaiming-normal (fan-out) initialised, as torchvision's ResNets (the
/// paper uses He initialisation; `zoo_defs.py` leaves PyTorch's default).
///
/// # Shapes
/// - input `[N, 3, H, W]`: 32x32 in the paper; global average pooling takes any size
///   (Fashion-MNIST's 28x28 ends in 7x7 feature maps)
/// - output `[N, num_classes]` (logits)
///
/// ```
/// use ventral_models::CifarResNet;
/// use ventral_nn::{Module, Tensor, parameter_count};
///
/// let mut net = CifarResNet::new(20, 10, 0)?;
/// assert_eq!(parameter_count(&mut net), 269_722);
/// assert_eq!(net.forward(&Tensor::zeros([2, 3, 32, 32])?)?.dims(), [2, 10]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct CifarResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    layers: [Chain; 3],
    fc: Linear,
    depth: usize,
}

impl CifarResNet {
    /// ResNet-`depth`; `depth = 6n + 2` (20, 32, 44, 56, 110, …).
    ///
    /// # Errors
    /// If `depth` is not `6n + 2` with `n ≥ 1`, or `num_classes` is zero.
    pub fn new(depth: usize, num_classes: usize, seed: u64) -> Result<Self> {
        Self::adapted(depth, 3, num_classes, seed)
    }

    /// ResNet-`depth` with `conv1` taking `in_channels` channels (the registry's
    /// `--in-channels`).
    pub(crate) fn adapted(
        depth: usize,
        in_channels: usize,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        if depth < 8 || !(depth - 2).is_multiple_of(6) {
            return Err(Error::config(
                "CifarResNet",
                format!("depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}"),
            ));
        }
        let n = (depth - 2) / 6;
        let init = &mut Init::new(seed);
        let p = Conv2dParams::default().padding(1);
        let conv1 = conv(
            (in_channels, 16),
            3,
            p,
            false,
            WeightInit::KaimingFanOut,
            init,
        )?;
        let mut inplanes = 16;
        let mut stages = Vec::with_capacity(3);
        for (i, width) in [16, 32, 64].into_iter().enumerate() {
            let mut chain = chain();
            for b in 0..n {
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                chain.push_boxed(Box::new(CifarBasicBlock::new(
                    inplanes, width, stride, init,
                )?));
                inplanes = width;
            }
            stages.push(chain);
        }
        let [l1, l2, l3]: [Chain; 3] = stages
            .try_into()
            .map_err(|_| Error::config("CifarResNet", "three stages"))?;
        Ok(Self {
            conv1,
            bn1: bn(16)?,
            layers: [l1, l2, l3],
            fc: Linear::new(64, num_classes, true, init)?,
            depth,
        })
    }
}

impl Module for CifarResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, 3, 32, 32]
        let x = conv_bn((&self.conv1, "conv1"), (&self.bn1, "bn1"), true, x)?; // [N, 16, 32, 32]
        let x = forward_child(&self.layers[0], "layer1", &x)?; // [N, 16, 32, 32]
        let x = forward_child(&self.layers[1], "layer2", &x)?; // [N, 32, 16, 16]
        let x = forward_child(&self.layers[2], "layer3", &x)?; // [N, 64, 8, 8]
        let x = forward_child(&AdaptiveAvgPool2d::new((1, 1)), "avgpool", &x)?; // [N, 64, 1, 1]
        let x = x.flatten(1, 3)?; // [N, 64]
        forward_child(&self.fc, "fc", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv1", &mut self.conv1);
        f("bn1", &mut self.bn1);
        for (i, layer) in self.layers.iter_mut().enumerate() {
            f(&format!("layer{}", i + 1), layer);
        }
        f("fc", &mut self.fc);
    }

    fn describe(&self) -> String {
        format!("CifarResNet{}", self.depth)
    }
}
