//! LeNet-5 as the PyTorch tutorial writes it (ReLU and max pooling by default).

use ventral_nn::layers::{Conv2d, Linear, MaxPool2d};
use ventral_nn::{AvgPool2dParams, Conv2dParams, Init, Module, Result, Tensor};

use crate::summary::forward_child;

/// The activation between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// `max(0, x)` (the default, as in `zoo_defs.py`).
    #[default]
    Relu,
    /// `tanh(x)`, as in LeCun et al. 1998.
    Tanh,
}

/// The subsampling after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// 2x2 max pooling (the default).
    #[default]
    Max,
    /// 2x2 average pooling, closer to the paper's subsampling.
    Average,
}

/// LeNet-5 adapted to 28x28 MNIST: conv 6@5x5 pad 2 → pool → conv 16@5x5 → pool → FC 120 →
/// 84 → classes. 61,706 parameters with 10 classes; state-dict keys `conv1.*`, `conv2.*`,
/// `fc1.*`, `fc2.*`, `fc3.*`.
///
/// # Shapes
/// - input `[N, 1, 28, 28]`
/// - output `[N, num_classes]` (logits)
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    activation: Activation,
    pooling: Pooling,
}

impl LeNet5 {
    /// LeNet-5 with ReLU and max pooling, initialised from `seed` as PyTorch initialises each
    /// layer.
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn new(num_classes: usize, seed: u64) -> Result<Self> {
        Self::with_options(num_classes, Activation::Relu, Pooling::Max, seed)
    }

    /// LeNet-5 with a chosen activation and pooling.
    ///
    /// # Errors
    /// If `num_classes` is zero.
    pub fn with_options(
        num_classes: usize,
        activation: Activation,
        pooling: Pooling,
        seed: u64,
    ) -> Result<Self> {
        Self::adapted(1, num_classes, activation, pooling, seed)
    }

    /// LeNet-5 whose `conv1` takes `in_channels` channels (the registry's `--in-channels`).
    pub(crate) fn adapted(
        in_channels: usize,
        num_classes: usize,
        activation: Activation,
        pooling: Pooling,
        seed: u64,
    ) -> Result<Self> {
        let init = &mut Init::new(seed);
        let stem = Conv2dParams::default().padding(2);
        Ok(Self {
            conv1: Conv2d::new(in_channels, 6, (5, 5), stem, true, init)?,
            conv2: Conv2d::new(6, 16, (5, 5), Conv2dParams::default(), true, init)?,
            fc1: Linear::new(16 * 5 * 5, 120, true, init)?,
            fc2: Linear::new(120, 84, true, init)?,
            fc3: Linear::new(84, num_classes, true, init)?,
            activation,
            pooling,
        })
    }

    fn act(&self, x: Tensor) -> Result<Tensor> {
        Ok(match self.activation {
            Activation::Relu => x.relu()?,
            Activation::Tanh => x.tanh()?,
        })
    }

    fn pool(&self, x: Tensor) -> Result<Tensor> {
        match self.pooling {
            Pooling::Max => MaxPool2d::new(2).forward(&x),
            Pooling::Average => Ok(x.avg_pool2d(&AvgPool2dParams::square(2))?),
        }
    }
}

impl Module for LeNet5 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, 1, 28, 28]
        let x = self.pool(self.act(forward_child(&self.conv1, "conv1", x)?)?)?; // [N, 6, 14, 14]
        let x = self.pool(self.act(forward_child(&self.conv2, "conv2", &x)?)?)?; // [N, 16, 5, 5]
        let x = x.flatten(1, 3)?; // [N, 400]
        let x = self.act(forward_child(&self.fc1, "fc1", &x)?)?; // [N, 120]
        let x = self.act(forward_child(&self.fc2, "fc2", &x)?)?; // [N, 84]
        forward_child(&self.fc3, "fc3", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f("conv1", &mut self.conv1);
        f("conv2", &mut self.conv2);
        f("fc1", &mut self.fc1);
        f("fc2", &mut self.fc2);
        f("fc3", &mut self.fc3);
    }

    fn describe(&self) -> String {
        "LeNet5".into()
    }
}
