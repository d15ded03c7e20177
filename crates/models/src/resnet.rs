//! torchvision's ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition") and its
//! public building blocks [`BasicBlock`] and [`Bottleneck`].

use ventral_nn::layers::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d};
use ventral_nn::{Conv2dParams, Error, Init, MaxPool2dParams, Module, Result, Tensor};

use crate::common::{WeightInit, bn, conv, conv_bn, residual_relu};
use crate::summary::{Chain, chain, forward_child};

/// A 3x3 convolution, padding 1, no bias, Kaiming-normal (fan-out) initialised.
fn conv3x3(cin: usize, cout: usize, stride: usize, init: &mut Init) -> Result<Conv2d> {
    let p = Conv2dParams::default().stride(stride).padding(1);
    conv((cin, cout), 3, p, false, WeightInit::KaimingFanOut, init)
}

/// A 1x1 convolution, no bias, Kaiming-normal (fan-out) initialised.
fn conv1x1(cin: usize, cout: usize, stride: usize, init: &mut Init) -> Result<Conv2d> {
    let p = Conv2dParams::default().stride(stride);
    conv((cin, cout), 1, p, false, WeightInit::KaimingFanOut, init)
}

/// torchvision's projection shortcut: `Sequential(conv1x1(stride), BatchNorm2d)`, keys
/// `downsample.0.weight`, `downsample.1.*`; present when the block changes size.
fn downsample(cin: usize, cout: usize, stride: usize, init: &mut Init) -> Result<Option<Chain>> {
    Ok((stride != 1 || cin != cout).then_some(
        chain()
            .push(conv1x1(cin, cout, stride, init)?)
            .push(bn(cout)?),
    ))
}

/// Runs the shortcut (identity when there is no projection).
fn shortcut(downsample: Option<&Chain>, x: &Tensor) -> Result<Tensor> {
    match downsample {
        Some(d) => forward_child(d, "downsample", x),
        None => Ok(x.clone()),
    }
}

/// ResNet-18/34's residual block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))` with
/// two 3x3 convolutions (the first strided) and a 1x1 projection shortcut when the size
/// changes. Keys `conv1.weight`, `bn1.*`, `conv2.weight`, `bn2.*`, `downsample.{0,1}.*`.
///
/// # Shapes
/// - input `[N, inplanes, H, W]`
/// - output `[N, planes, ⌈H / stride⌉, ⌈W / stride⌉]`
///
/// ```
/// use ventral_models::BasicBlock;
/// use ventral_nn::{Init, Module, Tensor};
///
/// let block = BasicBlock::new(64, 128, 2, &mut Init::new(0))?;
/// assert_eq!(block.forward(&Tensor::zeros([2, 64, 8, 8])?)?.dims(), [2, 128, 4, 4]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<Chain>,
}

impl BasicBlock {
    /// Output channels per `planes` (1).
    pub const EXPANSION: usize = 1;

    /// A block from `inplanes` to `planes` channels, the first convolution strided.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(inplanes: usize, planes: usize, stride: usize, init: &mut Init) -> Result<Self> {
        Ok(Self {
            conv1: conv3x3(inplanes, planes, stride, init)?,
            bn1: bn(planes)?,
            conv2: conv3x3(planes, planes, 1, init)?,
            bn2: bn(planes)?,
            downsample: downsample(inplanes, planes, stride, init)?,
        })
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, inplanes, H, W]
        let y = conv_bn((&self.conv1, "conv1"), (&self.bn1, "bn1"), true, x)?; // [N, planes, H/s, W/s]
        let y = conv_bn((&self.conv2, "conv2"), (&self.bn2, "bn2"), false, &y)?; // [N, planes, H/s, W/s]
        let identity = shortcut(self.downsample.as_ref(), x)?; // [N, planes, H/s, W/s]
        residual_relu(&y, &identity) // [N, planes, H/s, W/s]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv1", &mut self.conv1);
        f("bn1", &mut self.bn1);
        f("conv2", &mut self.conv2);
        f("bn2", &mut self.bn2);
        if let Some(d) = &mut self.downsample {
            f("downsample", d);
        }
    }

    fn describe(&self) -> String {
        let (i, o) = (self.conv1.weight.dims()[1], self.conv2.weight.dims()[0]);
        format!("BasicBlock({i}→{o}, stride {})", self.conv1.params.stride.0)
    }
}

/// ResNet-50/101/152's residual block (torchvision's "v1.5", stride on the 3x3):
/// 1x1 to `planes`, 3x3 (strided), 1x1 to `4·planes`, each with batch norm, plus the shortcut.
/// Keys `conv{1,2,3}.weight`, `bn{1,2,3}.*`, `downsample.{0,1}.*`.
///
/// # Shapes
/// - input `[N, inplanes, H, W]`
/// - output `[N, 4·planes, ⌈H / stride⌉, ⌈W / stride⌉]`
///
/// ```
/// use ventral_models::Bottleneck;
/// use ventral_nn::{Init, Module, Tensor};
///
/// let block = Bottleneck::new(64, 64, 1, &mut Init::new(0))?;
/// assert_eq!(block.forward(&Tensor::zeros([1, 64, 8, 8])?)?.dims(), [1, 256, 8, 8]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<Chain>,
}

impl Bottleneck {
    /// Output channels per `planes` (4).
    pub const EXPANSION: usize = 4;

    /// A block from `inplanes` to `4·planes` channels, the 3x3 convolution strided.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(inplanes: usize, planes: usize, stride: usize, init: &mut Init) -> Result<Self> {
        let out = planes * Self::EXPANSION;
        Ok(Self {
            conv1: conv1x1(inplanes, planes, 1, init)?,
            bn1: bn(planes)?,
            conv2: conv3x3(planes, planes, stride, init)?,
            bn2: bn(planes)?,
            conv3: conv1x1(planes, out, 1, init)?,
            bn3: bn(out)?,
            downsample: downsample(inplanes, out, stride, init)?,
        })
    }
}

impl Module for Bottleneck {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, inplanes, H, W]
        let y = conv_bn((&self.conv1, "conv1"), (&self.bn1, "bn1"), true, x)?; // [N, planes, H, W]
        let y = conv_bn((&self.conv2, "conv2"), (&self.bn2, "bn2"), true, &y)?; // [N, planes, H/s, W/s]
        let y = conv_bn((&self.conv3, "conv3"), (&self.bn3, "bn3"), false, &y)?; // [N, 4·planes, H/s, W/s]
        let identity = shortcut(self.downsample.as_ref(), x)?; // [N, 4·planes, H/s, W/s]
        residual_relu(&y, &identity) // [N, 4·planes, H/s, W/s]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv1", &mut self.conv1);
        f("bn1", &mut self.bn1);
        f("conv2", &mut self.conv2);
        f("bn2", &mut self.bn2);
        f("conv3", &mut self.conv3);
        f("bn3", &mut self.bn3);
        if let Some(d) = &mut self.downsample {
            f("downsample", d);
        }
    }

    fn describe(&self) -> String {
        let (i, o) = (self.conv1.weight.dims()[1], self.conv3.weight.dims()[0]);
        format!("Bottleneck({i}→{o}, stride {})", self.conv2.params.stride.0)
    }
}

/// Which residual block a [`ResNet`] stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// [`BasicBlock`] (ResNet-18, -34).
    Basic,
    /// [`Bottleneck`] (ResNet-50, -101, -152).
    Bottleneck,
}

/// torchvision's ResNet: a 7x7/2 stem and 3x3/2 max pool, four stages of residual blocks
/// (64, 128, 256, 512 planes; stages 2–4 halve the size), global average pooling and a fully
/// connected layer. Convolutions are Kaiming-normal (fan-out), batch norms 1 and 0, as in
/// torchvision. 11,689,512 parameters for ResNet-18 with 1000 classes.
///
/// # Shapes
/// - input `[N, 3, H, W]` (224x224 in the paper; any size ≥ 32 works)
/// - output `[N, num_classes]` (logits)
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    layers: [Chain; 4],
    fc: Linear,
    name: String,
}

impl ResNet {
    /// ResNet-`depth` for `depth` in 18, 34, 50, 101, 152.
    ///
    /// # Errors
    /// For another depth, or zero classes.
    pub fn new(depth: usize, num_classes: usize, seed: u64) -> Result<Self> {
        Self::adapted_depth(depth, 3, num_classes, seed)
    }

    /// The block kind and blocks per stage of ResNet-`depth`.
    fn config(depth: usize) -> Result<(Block, [usize; 4])> {
        Ok(match depth {
            18 => (Block::Basic, [2, 2, 2, 2]),
            34 => (Block::Basic, [3, 4, 6, 3]),
            50 => (Block::Bottleneck, [3, 4, 6, 3]),
            101 => (Block::Bottleneck, [3, 4, 23, 3]),
            152 => (Block::Bottleneck, [3, 8, 36, 3]),
            _ => {
                return Err(Error::config(
                    "ResNet",
                    format!("depth {depth} is not one of 18, 34, 50, 101, 152"),
                ));
            }
        })
    }

    /// A ResNet of `blocks[i]` blocks of kind `block` in stage `i`.
    ///
    /// # Errors
    /// If a stage has no block or `num_classes` is zero.
    pub fn with_blocks(
        block: Block,
        blocks: [usize; 4],
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        Self::adapted(block, blocks, 3, num_classes, seed)
    }

    /// ResNet-`depth` with `conv1` taking `in_channels` channels (the registry's
    /// `--in-channels`).
    pub(crate) fn adapted_depth(
        depth: usize,
        in_channels: usize,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        let (block, blocks) = Self::config(depth)?;
        let mut net = Self::adapted(block, blocks, in_channels, num_classes, seed)?;
        net.name = format!("ResNet{depth}");
        Ok(net)
    }

    fn adapted(
        block: Block,
        blocks: [usize; 4],
        in_channels: usize,
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        if blocks.contains(&0) {
            return Err(Error::config("ResNet", "every stage needs a block"));
        }
        let init = &mut Init::new(seed);
        let stem = Conv2dParams::default().stride(2).padding(3);
        let conv1 = conv(
            (in_channels, 64),
            7,
            stem,
            false,
            WeightInit::KaimingFanOut,
            init,
        )?;
        let expansion = match block {
            Block::Basic => BasicBlock::EXPANSION,
            Block::Bottleneck => Bottleneck::EXPANSION,
        };
        let mut inplanes = 64;
        let mut stage = |planes: usize, count: usize, stride: usize| -> Result<Chain> {
            let mut chain = chain();
            for b in 0..count {
                let s = if b == 0 { stride } else { 1 };
                match block {
                    Block::Basic => {
                        chain.push_boxed(Box::new(BasicBlock::new(inplanes, planes, s, init)?))
                    }
                    Block::Bottleneck => {
                        chain.push_boxed(Box::new(Bottleneck::new(inplanes, planes, s, init)?))
                    }
                }
                inplanes = planes * expansion;
            }
            Ok(chain)
        };
        let layers = [
            stage(64, blocks[0], 1)?,
            stage(128, blocks[1], 2)?,
            stage(256, blocks[2], 2)?,
            stage(512, blocks[3], 2)?,
        ];
        Ok(Self {
            conv1,
            bn1: bn(64)?,
            layers,
            fc: Linear::new(512 * expansion, num_classes, true, init)?,
            name: format!("ResNet({block:?}, {blocks:?})"),
        })
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, 3, 224, 224]; shapes below for 224x224 and BasicBlock (e = 1; Bottleneck e = 4)
        let x = conv_bn((&self.conv1, "conv1"), (&self.bn1, "bn1"), true, x)?; // [N, 64, 112, 112]
        let pool = MaxPool2d::with_params(
            MaxPool2dParams::square(3)
                .with_padding((1, 1))
                .with_stride((2, 2)),
        );
        let x = forward_child(&pool, "maxpool", &x)?; // [N, 64, 56, 56]
        let x = forward_child(&self.layers[0], "layer1", &x)?; // [N, 64e, 56, 56]
        let x = forward_child(&self.layers[1], "layer2", &x)?; // [N, 128e, 28, 28]
        let x = forward_child(&self.layers[2], "layer3", &x)?; // [N, 256e, 14, 14]
        let x = forward_child(&self.layers[3], "layer4", &x)?; // [N, 512e, 7, 7]
        let x = forward_child(&AdaptiveAvgPool2d::new((1, 1)), "avgpool", &x)?; // [N, 512e, 1, 1]
        let x = x.flatten(1, 3)?; // [N, 512e]
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
        self.name.clone()
    }
}
