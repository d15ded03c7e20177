//! The training losses a [`Trainer`](crate::Trainer) can minimise.

use ventral_nn::{Tensor, loss};

use crate::error::Result;

/// A loss of logits against integer labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// Cross-entropy of the logits (PyTorch's `CrossEntropyLoss`).
    #[default]
    CrossEntropy,
    /// The multiclass hinge loss (a linear SVM's), averaged over classes.
    Hinge,
    /// Mean squared error against one-hot targets.
    Mse,
}

impl Loss {
    /// The mean loss of `logits` (`[n, classes]`) for `labels`.
    ///
    /// # Errors
    /// If the shapes do not fit.
    pub fn of(self, logits: &Tensor, labels: &[usize], classes: usize) -> Result<Tensor> {
        self.of_smoothed(logits, labels, classes, 0.0)
    }

    /// As [`of`](Self::of), with label smoothing `epsilon` on the cross-entropy (PyTorch's
    /// `label_smoothing`; ignored by the other losses, which the
    /// [`Trainer`](crate::Trainer) refuses to combine with it).
    ///
    /// # Errors
    /// If the shapes do not fit, or `epsilon` is outside [0, 1].
    pub fn of_smoothed(
        self,
        logits: &Tensor,
        labels: &[usize],
        classes: usize,
        epsilon: f32,
    ) -> Result<Tensor> {
        Ok(match self {
            Loss::CrossEntropy => loss::cross_entropy(logits, labels, epsilon)?,
            Loss::Hinge => {
                loss::multi_margin_loss(logits, labels, loss::MarginNormalization::ByClasses)?
            }
            Loss::Mse => {
                let mut one_hot = vec![0.0f32; labels.len() * classes];
                for (i, &l) in labels.iter().enumerate() {
                    one_hot[i * classes + l] = 1.0;
                }
                let target = Tensor::from_vec(one_hot, [labels.len(), classes])
                    .map_err(ventral_nn::Error::from)?;
                loss::mse_loss(logits, &target)?
            }
        })
    }
}
