//! Dropout (Srivastava et al. 2014), inverted as in PyTorch.

use std::sync::atomic::{AtomicU64, Ordering};

use ventral_autograd::{Tensor, rng};

use super::py_float;
use crate::error::{Error, Result};
use crate::module::{Mode, Module, Slot, join};

/// PyTorch's `nn.Dropout`: in [`Mode::Train`] each element is zeroed with probability `p`
/// and the survivors are scaled by `1 / (1 − p)`, so eval mode (the identity) needs no
/// rescaling.
///
/// # Determinism
/// Masks are reproducible: call `i` (counting from 0) of `forward` in training mode uses the
/// mask of seed [`crate::rng::child_seed`]`(seed, i + 1)`, a SplitMix64 hash, and the mask itself is a pure function of
/// that seed and the element index. The call counter is an [`AtomicU64`] so that
/// `forward(&self)` can advance it. Give each dropout in a model its own seed (e.g. from
/// [`crate::Init::next_seed`]), or same-shaped layers draw identical masks. The counter is
/// not part of the state dict (PyTorch's `Dropout` has none); it is visited as
/// [`Slot::Rng`] named `rng_calls`, so [`crate::training_state`] saves it and a resumed run
/// draws the same masks as one never stopped.
///
/// # Shapes
/// Any; the output has the input's shape.
///
/// ```
/// use ventral_nn::{Mode, Module, Tensor, layers::Dropout};
///
/// let mut drop = Dropout::new(0.5, 7)?;
/// let x = Tensor::ones([1000])?;
/// let y = drop.forward(&x)?.to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0)); // dropped, or kept and scaled by 2
/// assert_ne!(drop.forward(&x)?.to_vec(), y); // the next call draws a new mask
/// drop.set_mode(Mode::Eval);
/// assert_eq!(drop.forward(&x)?.to_vec(), x.to_vec());
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: f32,
    seed: u64,
    calls: AtomicU64,
    mode: Mode,
}

impl Dropout {
    /// Dropout with probability `p` and masks derived from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] if `p` is NaN or outside `[0, 1]`.
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(
                "Dropout",
                format!("probability must be in [0, 1], got {p}"),
            ));
        }
        Ok(Self {
            p,
            seed,
            calls: AtomicU64::new(0),
            mode: Mode::Train,
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// How many training-mode forward calls have drawn a mask.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Restores the call counter (when resuming from a checkpoint).
    pub fn set_calls(&mut self, calls: u64) {
        *self.calls.get_mut() = calls;
    }

    /// The seed of the mask of training call `call`.
    fn mask_seed(&self, call: u64) -> u64 {
        rng::child_seed(self.seed, call.wrapping_add(1))
    }
}

impl Clone for Dropout {
    fn clone(&self) -> Self {
        Self {
            p: self.p,
            seed: self.seed,
            calls: AtomicU64::new(self.calls()),
            mode: self.mode,
        }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.mode == Mode::Eval {
            return Ok(x.clone());
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        x.dropout(self.p, self.mask_seed(call), Mode::Train)
            .map_err(|e| Error::from(e).in_layer("", &self.describe()))
    }

    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&join(prefix, "rng_calls"), Slot::Rng(self.calls.get_mut()));
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    fn mode(&self) -> Option<Mode> {
        Some(self.mode)
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", py_float(self.p))
    }
}
