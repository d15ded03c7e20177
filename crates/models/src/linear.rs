//! The lecture's linear classifier: scores `s = W·x + b`, trained as a linear SVM.

use ventral_nn::layers::Linear;
use ventral_nn::loss::{MarginNormalization, multi_margin_loss};
use ventral_nn::{Init, Module, Result, Tensor};

use crate::summary::forward_child;

/// The score function `s = W·x + b` over flattened inputs; state-dict keys `weight`
/// `[classes, inputs]` and `bias` `[classes]`. Train it with [`LinearClassifier::svm_loss`]
/// (the multiclass hinge loss plus L2) and any optimizer: that is a linear SVM.
///
/// # Shapes
/// - input `[N, inputs]` or `[N, C, H, W]` with `C·H·W = inputs`
/// - output `[N, num_classes]` (scores)
///
/// ```
/// use ventral_models::LinearClassifier;
/// use ventral_nn::{Module, Tensor};
///
/// // CIFAR-10's 32x32x3 image stretched into 3072 numbers, 10 scores.
/// let model = LinearClassifier::new(3072, 10, 0)?;
/// assert_eq!(model.forward(&Tensor::zeros([1, 3, 32, 32])?)?.dims(), [1, 10]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct LinearClassifier {
    linear: Linear,
}

impl LinearClassifier {
    /// `W` and `b` with PyTorch's `Linear` initialisation from `seed`.
    ///
    /// # Errors
    /// If a size is zero.
    pub fn new(inputs: usize, num_classes: usize, seed: u64) -> Result<Self> {
        Ok(Self {
            linear: Linear::new(inputs, num_classes, true, &mut Init::new(seed))?,
        })
    }

    /// `W`, `[classes, inputs]`.
    pub fn weight(&self) -> &Tensor {
        &self.linear.weight
    }

    /// The lecture's full loss `L = (1/N) Σ_i Σ_{j≠y_i} max(0, s_j − s_{y_i} + 1) + λ Σ W²`
    /// on a batch `x` with labels `labels` (the bias is not regularised).
    ///
    /// # Errors
    /// If the shapes do not fit or a label is out of range.
    pub fn svm_loss(&self, x: &Tensor, labels: &[usize], lambda: f32) -> Result<Tensor> {
        let scores = self.forward(x)?;
        let data = multi_margin_loss(&scores, labels, MarginNormalization::Sum)?;
        let reg = self.linear.weight.pow(2.0)?.sum_all()?.mul_scalar(lambda)?;
        Ok(data.add(&reg)?)
    }
}

impl Module for LinearClassifier {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: [N, inputs] or [N, C, H, W]
        let x = x.flatten(1, x.rank().max(2) - 1)?; // [N, inputs]
        forward_child(&self.linear, "", &x) // [N, classes]
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        // The layer adds no name of its own: keys `weight` and `bias`, as a bare `nn.Linear`.
        f("", &mut self.linear);
    }

    fn describe(&self) -> String {
        let d = self.linear.weight.dims();
        format!("LinearClassifier({}→{})", d[1], d[0])
    }
}
