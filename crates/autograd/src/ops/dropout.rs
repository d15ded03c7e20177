//! Inverted dropout (PyTorch semantics) with the kernel's counter-based masks.

use std::sync::Arc;

use ventral_kernels::dropout as k;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Whether an op runs as in training or as in evaluation (dropout, batch norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Training: dropout drops, batch norm uses (and updates) batch statistics.
    #[default]
    Train,
    /// Evaluation: dropout is the identity, batch norm uses its running statistics.
    Eval,
}

impl Tensor {
    /// Inverted dropout: in [`Mode::Train`] each element is zeroed with probability `p` and
    /// the rest are scaled by `1 / (1 - p)`, by a mask fixed by `seed` and the element index
    /// (draw a fresh seed per step); the gradient is masked the same way. In [`Mode::Eval`]
    /// it is the identity.
    ///
    /// ```
    /// use ventral_autograd::{Mode, Tensor};
    ///
    /// let x = Tensor::ones([1000])?;
    /// let y = x.dropout(0.5, 7, Mode::Train)?.to_vec();
    /// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    /// assert_eq!(x.dropout(0.5, 7, Mode::Eval)?.to_vec(), x.to_vec());
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `p` is NaN or outside [0, 1].
    pub fn dropout(&self, p: f32, seed: u64, mode: Mode) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout",
                format!(
                    "probability must be in [0, 1], got {p} (input shape {})",
                    self.shape()
                ),
            ));
        }
        if mode == Mode::Eval {
            return Ok(self.clone());
        }
        let n = self.numel();
        let (mut y, mut mask) = (vec![0.0; n], vec![0.0; n]);
        k::dropout(&self.data(), p, seed, &mut y, &mut mask)?;
        Tensor::record(
            "dropout",
            Arc::new(y),
            self.shape().clone(),
            &[self],
            move |ctx| {
                Ok(vec![Some(
                    ctx.grad().iter().zip(&mask).map(|(g, m)| g * m).collect(),
                )])
            },
        )
    }
}
