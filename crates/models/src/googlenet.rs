//! torchvision's GoogLeNet (Szegedy et al. 2014, "Going deeper with convolutions",
//! Inception v1) and its building blocks.

use ventral_nn::layers::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Linear, MaxPool2d, ReLU,
};
use ventral_nn::{Conv2dParams, Init, MaxPool2dParams, Module, Result, Tensor, concat};

use crate::common::{WeightInit, bn_eps, conv, conv_bn, linear};
use crate::summary::{Chain, chain, forward_child};

/// torchvision's GoogLeNet initialisation: truncated normal, std 0.01.
const INIT: WeightInit = WeightInit::TruncNormal(0.01);

/// torchvision's `BasicConv2d`: a convolution without bias, batch norm with `eps = 0.001`,
/// ReLU. Keys `conv.weight`, `bn.*`.
///
/// # Shapes
/// - input `[N, in, H, W]`
/// - output `[N, out, H', W']` as the convolution gives
pub struct BasicConv2d {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl BasicConv2d {
    /// A `k x k` convolution from `cin` to `cout` channels with the given stride and padding.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        params: Conv2dParams,
        init: &mut Init,
    ) -> Result<Self> {
        Ok(Self {
            conv: conv((cin, cout), k, params, false, INIT, init)?,
            bn: bn_eps(cout, 0.001)?,
        })
    }
}

impl Module for BasicConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv_bn((&self.conv, "conv"), (&self.bn, "bn"), true, x) // [N, out, H', W']
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv", &mut self.conv);
        f("bn", &mut self.bn);
    }

    fn describe(&self) -> String {
        let d = self.conv.weight.dims();
        format!("BasicConv2d({}→{}, {}x{})", d[1], d[0], d[2], d[3])
    }
}

fn pool(k: usize, stride: usize, padding: usize) -> MaxPool2d {
    MaxPool2d::with_params(
        MaxPool2dParams::square(k)
            .with_stride((stride, stride))
            .with_padding((padding, padding))
            .with_ceil_mode(true),
    )
}

/// The Inception module: four branches run on the same input and concatenated along the
/// channels — 1x1; 1x1 → 3x3; 1x1 → "5x5"; 3x3 max pool → 1x1. As in torchvision, the third
/// branch's second convolution is 3x3 (a known deviation from the paper's 5x5 that
/// torchvision keeps for its weights). Keys `branch1.*`, `branch2.{0,1}.*`,
/// `branch3.{0,1}.*`, `branch4.1.*`.
///
/// # Shapes
/// - input `[N, in, H, W]`
/// - output `[N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W]`
///
/// ```
/// use ventral_models::Inception;
/// use ventral_nn::{Init, Module, Tensor};
///
/// // inception3a: 192 channels in, 64 + 128 + 32 + 32 = 256 out.
/// let block = Inception::new(192, [64, 96, 128, 16, 32, 32], &mut Init::new(0))?;
/// assert_eq!(block.forward(&Tensor::zeros([2, 192, 7, 7])?)?.dims(), [2, 256, 7, 7]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct Inception {
    branch1: BasicConv2d,
    branch2: Chain,
    branch3: Chain,
    branch4: Chain,
}

impl Inception {
    /// An Inception module with widths `[ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj]`
    /// (torchvision's argument order).
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(cin: usize, widths: [usize; 6], init: &mut Init) -> Result<Self> {
        let [c1, c3r, c3, c5r, c5, pp] = widths;
        let p = Conv2dParams::default();
        Ok(Self {
            branch1: BasicConv2d::new(cin, c1, 1, p, init)?,
            branch2: chain()
                .push(BasicConv2d::new(cin, c3r, 1, p, init)?)
                .push(BasicConv2d::new(c3r, c3, 3, p.padding(1), init)?),
            branch3: chain()
                .push(BasicConv2d::new(cin, c5r, 1, p, init)?)
                .push(BasicConv2d::new(c5r, c5, 3, p.padding(1), init)?),
            branch4: chain()
                .push(pool(3, 1, 1))
                .push(BasicConv2d::new(cin, pp, 1, p, init)?),
        })
    }
}

impl Module for Inception {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, in, H, W]
        let b1 = forward_child(&self.branch1, "branch1", x)?; // [N, ch1x1, H, W]
        let b2 = forward_child(&self.branch2, "branch2", x)?; // [N, ch3x3, H, W]
        let b3 = forward_child(&self.branch3, "branch3", x)?; // [N, ch5x5, H, W]
        let b4 = forward_child(&self.branch4, "branch4", x)?; // [N, pool_proj, H, W]
        Ok(concat(&[&b1, &b2, &b3, &b4], 1)?) // [N, sum, H, W]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("branch1", &mut self.branch1);
        f("branch2", &mut self.branch2);
        f("branch3", &mut self.branch3);
        f("branch4", &mut self.branch4);
    }

    fn describe(&self) -> String {
        "Inception".into()
    }
}

/// An auxiliary classifier (torchvision's `InceptionAux`): 4x4 adaptive average pool,
/// `BasicConv2d` 1x1 to 128, `Linear(2048, 1024)`, ReLU, dropout 0.7, `Linear(1024, classes)`.
/// Keys `conv.*`, `fc1.*`, `fc2.*`.
///
/// # Shapes
/// - input `[N, in, H, W]`
/// - output `[N, num_classes]`
pub struct InceptionAux {
    conv: BasicConv2d,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
}

impl InceptionAux {
    /// An auxiliary head on `cin` channels.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(cin: usize, num_classes: usize, init: &mut Init) -> Result<Self> {
        Ok(Self {
            conv: BasicConv2d::new(cin, 128, 1, Conv2dParams::default(), init)?,
            fc1: linear((2048, 1024), INIT, init)?,
            fc2: linear((1024, num_classes), INIT, init)?,
            dropout: Dropout::new(0.7, init.next_seed())?,
        })
    }
}

impl Module for InceptionAux {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, in, 14, 14]
        let x = forward_child(&AdaptiveAvgPool2d::new((4, 4)), "avgpool", x)?; // [N, in, 4, 4]
        let x = forward_child(&self.conv, "conv", &x)?; // [N, 128, 4, 4]
        let x = x.flatten(1, 3)?; // [N, 2048]
        let x = forward_child(&self.fc1, "fc1", &x)?; // [N, 1024]
        let x = forward_child(&ReLU, "relu", &x)?;
        let x = forward_child(&self.dropout, "dropout", &x)?;
        forward_child(&self.fc2, "fc2", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv", &mut self.conv);
        f("fc1", &mut self.fc1);
        f("fc2", &mut self.fc2);
        f("dropout", &mut self.dropout);
    }

    fn describe(&self) -> String {
        "InceptionAux".into()
    }
}

/// Whether a [`GoogLeNet`] has its two auxiliary classifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuxLogits {
    /// No auxiliary heads (torchvision's `aux_logits=False`; 6,624,904 parameters).
    #[default]
    Without,
    /// `aux1` after inception4a and `aux2` after inception4d, read with
    /// [`GoogLeNet::forward_with_aux`].
    With,
}

/// torchvision's GoogLeNet: stem (`conv1` 7x7/2, pool, `conv2` 1x1, `conv3` 3x3, pool), nine
/// [`Inception`] modules with pools after 3b and 4e, global average pool, dropout 0.2 and
/// `fc` (1024 → classes). `transform_input=False`; convolutions and linear layers are
/// truncated-normal (std 0.01), batch norms 1 and 0, as torchvision's `init_weights=True`.
///
/// # Shapes
/// - input `[N, 3, 224, 224]`
/// - output `[N, num_classes]` (logits of the main head)
pub struct GoogLeNet {
    conv1: BasicConv2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    inception3: [Inception; 2],
    inception4: [Inception; 5],
    inception5: [Inception; 2],
    aux: Option<[InceptionAux; 2]>,
    dropout: Dropout,
    fc: Linear,
}

impl GoogLeNet {
    /// GoogLeNet with `num_classes` outputs, with or without the auxiliary heads.
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn new(num_classes: usize, aux: AuxLogits, seed: u64) -> Result<Self> {
        Self::adapted(3, num_classes, aux, seed)
    }

    /// [`GoogLeNet::new`] with `conv1` taking `in_channels` channels (the registry's
    /// `--in-channels`).
    pub(crate) fn adapted(
        in_channels: usize,
        num_classes: usize,
        aux: AuxLogits,
        seed: u64,
    ) -> Result<Self> {
        let init = &mut Init::new(seed);
        let p = Conv2dParams::default();
        let conv1 = BasicConv2d::new(in_channels, 64, 7, p.stride(2).padding(3), init)?;
        let conv2 = BasicConv2d::new(64, 64, 1, p, init)?;
        let conv3 = BasicConv2d::new(64, 192, 3, p.padding(1), init)?;
        let mut inc = |cin: usize, w: [usize; 6]| Inception::new(cin, w, init);
        let inception3 = [
            inc(192, [64, 96, 128, 16, 32, 32])?,
            inc(256, [128, 128, 192, 32, 96, 64])?,
        ];
        let inception4 = [
            inc(480, [192, 96, 208, 16, 48, 64])?,
            inc(512, [160, 112, 224, 24, 64, 64])?,
            inc(512, [128, 128, 256, 24, 64, 64])?,
            inc(512, [112, 144, 288, 32, 64, 64])?,
            inc(528, [256, 160, 320, 32, 128, 128])?,
        ];
        let inception5 = [
            inc(832, [256, 160, 320, 32, 128, 128])?,
            inc(832, [384, 192, 384, 48, 128, 128])?,
        ];
        let aux = match aux {
            AuxLogits::Without => None,
            AuxLogits::With => Some([
                InceptionAux::new(512, num_classes, init)?,
                InceptionAux::new(528, num_classes, init)?,
            ]),
        };
        Ok(Self {
            conv1,
            conv2,
            conv3,
            inception3,
            inception4,
            inception5,
            aux,
            dropout: Dropout::new(0.2, init.next_seed())?,
            fc: linear((1024, num_classes), INIT, init)?,
        })
    }

    /// The main logits and, if the model has them, the auxiliary heads' logits `(aux1, aux2)`
    /// (torchvision returns them in training; weight their losses by 0.3 as the paper).
    ///
    /// # Errors
    /// A shape error naming the layer.
    pub fn forward_with_aux(&self, x: &Tensor) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        // x: [N, 3, 224, 224]
        let x = forward_child(&self.conv1, "conv1", x)?; // [N, 64, 112, 112]
        let x = forward_child(&pool(3, 2, 0), "maxpool1", &x)?; // [N, 64, 56, 56]
        let x = forward_child(&self.conv2, "conv2", &x)?; // [N, 64, 56, 56]
        let x = forward_child(&self.conv3, "conv3", &x)?; // [N, 192, 56, 56]
        let x = forward_child(&pool(3, 2, 0), "maxpool2", &x)?; // [N, 192, 28, 28]
        let x = forward_child(&self.inception3[0], "inception3a", &x)?; // [N, 256, 28, 28]
        let x = forward_child(&self.inception3[1], "inception3b", &x)?; // [N, 480, 28, 28]
        let x = forward_child(&pool(3, 2, 0), "maxpool3", &x)?; // [N, 480, 14, 14]
        let x = forward_child(&self.inception4[0], "inception4a", &x)?; // [N, 512, 14, 14]
        let aux1 = match &self.aux {
            Some([a, _]) => Some(forward_child(a, "aux1", &x)?), // [N, classes]
            None => None,
        };
        let x = forward_child(&self.inception4[1], "inception4b", &x)?; // [N, 512, 14, 14]
        let x = forward_child(&self.inception4[2], "inception4c", &x)?; // [N, 512, 14, 14]
        let x = forward_child(&self.inception4[3], "inception4d", &x)?; // [N, 528, 14, 14]
        let aux2 = match &self.aux {
            Some([_, a]) => Some(forward_child(a, "aux2", &x)?), // [N, classes]
            None => None,
        };
        let x = forward_child(&self.inception4[4], "inception4e", &x)?; // [N, 832, 14, 14]
        let x = forward_child(&pool(2, 2, 0), "maxpool4", &x)?; // [N, 832, 7, 7]
        let x = forward_child(&self.inception5[0], "inception5a", &x)?; // [N, 832, 7, 7]
        let x = forward_child(&self.inception5[1], "inception5b", &x)?; // [N, 1024, 7, 7]
        let x = forward_child(&AdaptiveAvgPool2d::new((1, 1)), "avgpool", &x)?; // [N, 1024, 1, 1]
        let x = x.flatten(1, 3)?; // [N, 1024]
        let x = forward_child(&self.dropout, "dropout", &x)?;
        let logits = forward_child(&self.fc, "fc", &x)?; // [N, classes]
        Ok((logits, aux1.zip(aux2)))
    }
}

impl Module for GoogLeNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_aux(x)?.0)
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv1", &mut self.conv1);
        f("conv2", &mut self.conv2);
        f("conv3", &mut self.conv3);
        for (m, s) in self.inception3.iter_mut().zip(["3a", "3b"]) {
            f(&format!("inception{s}"), m);
        }
        for (m, s) in self
            .inception4
            .iter_mut()
            .zip(["4a", "4b", "4c", "4d", "4e"])
        {
            f(&format!("inception{s}"), m);
        }
        for (m, s) in self.inception5.iter_mut().zip(["5a", "5b"]) {
            f(&format!("inception{s}"), m);
        }
        if let Some([a1, a2]) = &mut self.aux {
            f("aux1", a1);
            f("aux2", a2);
        }
        f("dropout", &mut self.dropout);
        f("fc", &mut self.fc);
    }

    fn describe(&self) -> String {
        "GoogLeNet".into()
    }
}
