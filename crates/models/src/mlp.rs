//! Fully connected networks: the lecture's "2-layer" `f = W₂ max(0, W₁x)` and "3-layer"
//! `f = W₃ max(0, W₂ max(0, W₁x))`, with any hidden sizes.

use ventral_nn::layers::{Linear, ReLU};
use ventral_nn::{Error, Init, Module, Result, Tensor};

use crate::summary::forward_child;

/// A multi-layer perceptron: flatten, then `Linear → ReLU` for each hidden size, then a
/// final `Linear` to the class scores. Layers are named `fc1`, `fc2`, … (`fc1.weight`
/// `[hidden[0], inputs]`). A "2-layer" net has one hidden size, a "3-layer" net two.
///
/// # Shapes
/// - input `[N, inputs]` or `[N, C, H, W]` with `C·H·W = inputs`
/// - output `[N, num_classes]` (scores)
///
/// ```
/// use ventral_models::Mlp;
/// use ventral_nn::{Module, Tensor, parameter_count};
///
/// // The lecture's 2-layer net on 32x32x3 images: 3072 → 100 → 10.
/// let mut net = Mlp::new(3072, &[100], 10, 0)?;
/// assert_eq!(parameter_count(&mut net), 3072 * 100 + 100 + 100 * 10 + 10);
/// assert_eq!(net.forward(&Tensor::zeros([2, 3, 32, 32])?)?.dims(), [2, 10]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// An MLP `inputs → hidden[0] → … → num_classes`, PyTorch's default initialisation.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(inputs: usize, hidden: &[usize], num_classes: usize, seed: u64) -> Result<Self> {
        let init = &mut Init::new(seed);
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(num_classes);
        if sizes.contains(&0) {
            return Err(Error::config(
                "Mlp",
                format!("sizes must be positive, got {sizes:?}"),
            ));
        }
        let layers = sizes
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], true, init))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// The lecture's "2-layer" network: one hidden layer.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn two_layer(inputs: usize, hidden: usize, num_classes: usize, seed: u64) -> Result<Self> {
        Self::new(inputs, &[hidden], num_classes, seed)
    }

    /// The lecture's "3-layer" network: two hidden layers.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn three_layer(
        inputs: usize,
        hidden: (usize, usize),
        num_classes: usize,
        seed: u64,
    ) -> Result<Self> {
        Self::new(inputs, &[hidden.0, hidden.1], num_classes, seed)
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, inputs] or [N, C, H, W]
        let mut x = x.flatten(1, x.rank().max(2) - 1)?; // [N, inputs]
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = forward_child(layer, &format!("fc{}", i + 1), &x)?; // [N, sizes[i + 1]]
            if i < last {
                x = forward_child(&ReLU, &format!("relu{}", i + 1), &x)?;
            }
        }
        Ok(x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            f(&format!("fc{}", i + 1), layer);
        }
    }

    fn describe(&self) -> String {
        let sizes: Vec<String> = std::iter::once(self.layers[0].weight.dims()[1])
            .chain(self.layers.iter().map(|l| l.weight.dims()[0]))
            .map(|s| s.to_string())
            .collect();
        format!("Mlp({})", sizes.join("→"))
    }
}
