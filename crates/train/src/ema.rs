//! The exponential moving average of a model's weights (`--ema DECAY`): after every
//! optimizer step each parameter's average moves as `ema = decay·ema + (1 − decay)·param`,
//! and each buffer (BatchNorm's running statistics) is copied as it is, as timm's
//! `ModelEmaV3(exclude_buffers=True)` does. [`Trainer::fit`](crate::Trainer::fit) evaluates
//! the averaged weights after every epoch beside the raw ones, saves them as
//! `ema.safetensors`, and keeps them in the training state so a resumed run continues the
//! same average bit for bit.

use ventral_nn::checkpoint::{DType, StateDict, TensorData, TensorRecord};
use ventral_nn::{Module, Slot, no_grad};

use crate::error::{Result, TrainError};

/// The file name of the averaged weights inside a run directory (a state dict, as
/// `last.safetensors`).
pub const EMA_FILE: &str = "ema.safetensors";

/// The averaged parameters and copied buffers of a model, in its `visit` order.
#[derive(Debug, Clone)]
pub(crate) struct Ema {
    decay: f32,
    /// One entry per parameter and buffer, in visit order; `None` until the first step.
    values: Option<Vec<Vec<f32>>>,
}

/// Every parameter and buffer of `model`, in visit order, with its name, shape and kind.
fn tensors(model: &mut dyn Module) -> Vec<(String, Vec<usize>, Vec<f32>, bool)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, slot| match slot {
        Slot::Parameter(t) => out.push((
            name.to_string(),
            t.shape().dims().to_vec(),
            t.to_vec(),
            true,
        )),
        Slot::Buffer(t) => out.push((
            name.to_string(),
            t.shape().dims().to_vec(),
            t.to_vec(),
            false,
        )),
        Slot::Counter(_) | Slot::Rng(_) => {}
    });
    out
}

impl Ema {
    /// An average with weight `decay` on the past, started at the model's weights when the
    /// first step begins.
    pub(crate) fn new(decay: f32) -> Self {
        Self {
            decay,
            values: None,
        }
    }

    /// Fails unless `decay` is in [0, 1].
    pub(crate) fn check(&self) -> Result<()> {
        if (0.0..=1.0).contains(&self.decay) {
            Ok(())
        } else {
            Err(TrainError::Config(format!(
                "the EMA decay must be in [0, 1], got {}",
                self.decay
            )))
        }
    }

    /// Starts the average at `model`'s current weights, unless it has started.
    pub(crate) fn start(&mut self, model: &mut dyn Module) {
        if self.values.is_none() {
            self.values = Some(tensors(model).into_iter().map(|t| t.2).collect());
        }
    }

    /// One update after an optimizer step: parameters averaged, buffers copied.
    pub(crate) fn update(&mut self, model: &mut dyn Module) {
        self.start(model);
        let decay = self.decay;
        let rest = 1.0 - decay;
        let mut values = self.values.take().unwrap_or_default().into_iter();
        let mut next = Vec::new();
        model.visit("", &mut |_, slot| match slot {
            Slot::Parameter(t) => {
                let mut e = values.next().unwrap_or_default();
                for (e, &p) in e.iter_mut().zip(t.values().iter()) {
                    *e = decay * *e + rest * p;
                }
                next.push(e);
            }
            Slot::Buffer(t) => {
                values.next();
                next.push(t.to_vec());
            }
            Slot::Counter(_) | Slot::Rng(_) => {}
        });
        self.values = Some(next);
    }

    /// Exchanges `model`'s parameters and buffers with the average's (exact copies both ways:
    /// swapping twice restores every bit).
    ///
    /// # Errors
    /// If a tensor cannot be changed in place (never for a module's own).
    pub(crate) fn swap(&mut self, model: &mut dyn Module) -> Result<()> {
        self.start(model);
        let values = self.values.as_mut().expect("started above");
        let mut at = 0;
        let mut failure = None;
        no_grad(|| {
            model.visit("", &mut |_, slot| {
                if let Slot::Parameter(t) | Slot::Buffer(t) = slot {
                    let theirs = &mut values[at];
                    at += 1;
                    let mine = t.to_vec();
                    if let Err(e) = t.update(|dst| dst.copy_from_slice(theirs)) {
                        failure.get_or_insert(e);
                    }
                    *theirs = mine;
                }
            });
        });
        match failure {
            Some(e) => Err(ventral_nn::Error::from(e).into()),
            None => Ok(()),
        }
    }

    /// The average as a state dict under the model's names (for the training state).
    pub(crate) fn state(&mut self, model: &mut dyn Module) -> StateDict {
        self.start(model);
        let values = self.values.as_ref().expect("started above");
        let mut out = StateDict::new();
        for ((name, shape, _, _), v) in tensors(model).into_iter().zip(values) {
            let record = TensorRecord::new(&name, shape, TensorData::F32(v.clone()))
                .expect("the model's own shapes");
            out.insert(name, record);
        }
        out
    }

    /// Checks `state` (from a training state) against `model`: exactly its parameters and
    /// buffers, as f32 of their shapes. Changes nothing.
    pub(crate) fn check_state(
        state: &StateDict,
        model: &mut dyn Module,
    ) -> std::result::Result<(), String> {
        let expected = tensors(model);
        state
            .check_matches(
                expected
                    .iter()
                    .map(|(k, s, _, _)| (k.as_str(), s.as_slice(), DType::F32)),
            )
            .map_err(|e| e.to_string())
    }

    /// Continues from `state`, checked with [`check_state`](Self::check_state).
    pub(crate) fn restore(&mut self, state: &StateDict, model: &mut dyn Module) {
        let values = tensors(model)
            .into_iter()
            .map(|(name, ..)| {
                state
                    .get(&name)
                    .and_then(TensorRecord::as_f32)
                    .map(<[f32]>::to_vec)
                    .unwrap_or_default()
            })
            .collect();
        self.values = Some(values);
    }
}
