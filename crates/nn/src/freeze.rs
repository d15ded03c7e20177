//! Freezing part of a model for fine-tuning: PyTorch's `p.requires_grad_(False)` on the
//! parameters under some module paths, plus `.eval()` on the batch norms there.

use ventral_autograd::Tensor;

use crate::error::{Error, Result};
use crate::module::{Mode, Module, Slot, join};

/// Whether state-dict key (or module path) `key` lies under module path `prefix`: equal to
/// it, or starting with it followed by a `.` (`conv1` covers `conv1.weight`, not
/// `conv10.weight`).
pub fn under_prefix(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A model whose parameters under some module paths are frozen, the way a PyTorch user
/// fine-tunes (`for p in model.features.parameters(): p.requires_grad_(False)` and
/// `model.features.eval()` after every `model.train()`):
///
/// - each frozen parameter no longer requires a gradient ([`Tensor::requires_grad`] is
///   false), so backward computes none for it and no op before it records a graph; the
///   optimizers skip parameters that require no gradient, so weight decay and momentum never
///   move them and they get no optimizer state;
/// - every batch norm (any module with a mode of its own that keeps buffers or counters)
///   whose path lies under a frozen prefix stays in eval mode whatever mode the model is set
///   to: it normalises with its running statistics and leaves them unchanged. Dropout there
///   keeps following the model's mode.
///
/// The wrapper adds no name: its state dict, parameter order and outputs are the inner
/// model's.
///
/// ```
/// use ventral_nn::layers::{BatchNorm2d, Conv2d, Sequential};
/// use ventral_nn::{Conv2dParams, Frozen, Init, Mode, Module, modes};
///
/// let init = &mut Init::new(0);
/// let net = Sequential::new()
///     .push(Conv2d::new(1, 4, (3, 3), Conv2dParams::default(), false, init)?)
///     .push(BatchNorm2d::new(4)?)
///     .push(Conv2d::new(4, 4, (3, 3), Conv2dParams::default(), false, init)?);
/// let mut net = Frozen::new(Box::new(net), &["0", "1"])?;
/// net.set_mode(Mode::Train);
/// assert_eq!(modes(&mut net, ""), [("1".to_string(), Mode::Eval)]);
/// assert_eq!(net.frozen_keys(), ["0.weight", "1.weight", "1.bias"]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
pub struct Frozen {
    inner: Box<dyn Module>,
    prefixes: Vec<String>,
}

impl Frozen {
    /// Freezes the parameters of `model` under each of `prefixes` (module paths such as
    /// `features` or `layer1.0`, or single keys such as `fc.bias`, matched on state-dict
    /// keys at a `.` boundary; see [`under_prefix`]) and puts the batch norms there in
    /// eval mode.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty prefix, or one that matches no state-dict key (naming
    /// the model's top-level modules); nothing is frozen then.
    pub fn new(mut model: Box<dyn Module>, prefixes: &[impl AsRef<str>]) -> Result<Self> {
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.as_ref().to_string()).collect();
        let mut keys = Vec::new();
        model.visit("", &mut |name, slot| {
            if !matches!(slot, Slot::Rng(_)) {
                keys.push(name.to_string());
            }
        });
        for prefix in &prefixes {
            if prefix.is_empty() {
                return Err(Error::config(
                    "freeze",
                    "an empty prefix: name module paths such as `features` or `conv1`",
                ));
            }
            if !keys.iter().any(|k| under_prefix(k, prefix)) {
                let mut top: Vec<&str> = keys
                    .iter()
                    .map(|k| k.split('.').next().unwrap_or(k))
                    .collect();
                top.dedup();
                return Err(Error::config(
                    "freeze",
                    format!(
                        "`{prefix}` matches no parameter or buffer of the model; its top-level modules are {}",
                        top.join(", ")
                    ),
                ));
            }
        }
        model.visit("", &mut |name, slot| {
            if let Slot::Parameter(t) = slot
                && prefixes.iter().any(|p| under_prefix(name, p))
            {
                *t = t.detach();
            }
        });
        settle_frozen(model.as_mut(), "", &prefixes);
        Ok(Self {
            inner: model,
            prefixes,
        })
    }

    /// The frozen module paths, as given.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// The state-dict keys of the frozen parameters, in order.
    pub fn frozen_keys(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.inner.visit("", &mut |name, slot| {
            if let Slot::Parameter(t) = slot
                && !t.requires_grad()
            {
                out.push(name.to_string());
            }
        });
        out
    }

    /// The model inside (its frozen parameters still require no gradient).
    pub fn into_inner(self) -> Box<dyn Module> {
        self.inner
    }
}

/// Whether `module` keeps statistics its training mode would change (a batch norm's running
/// mean, variance and counter).
fn keeps_statistics(module: &mut dyn Module) -> bool {
    let mut found = false;
    module.visit("", &mut |_, slot| {
        found |= matches!(slot, Slot::Buffer(_) | Slot::Counter(_));
    });
    found
}

/// Puts `module` and every module under it that has a mode and keeps statistics in eval mode.
fn settle(module: &mut dyn Module) {
    if module.mode().is_some() && keeps_statistics(module) {
        module.set_mode(Mode::Eval);
    }
    module.for_each_child(&mut |_, child| settle(child));
}

/// Walks the children of `module` (at `path`) and settles those under a frozen prefix.
fn settle_frozen(module: &mut dyn Module, path: &str, prefixes: &[String]) {
    module.for_each_child(&mut |name, child| {
        let child_path = join(path, name);
        if prefixes.iter().any(|p| under_prefix(&child_path, p)) {
            settle(child);
        } else {
            settle_frozen(child, &child_path, prefixes);
        }
    });
}

impl Module for Frozen {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }

    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        // No name of its own: keys stay the inner model's.
        f("", self.inner.as_mut());
    }

    fn set_mode(&mut self, mode: Mode) {
        self.inner.set_mode(mode);
        if mode == Mode::Train {
            settle_frozen(self.inner.as_mut(), "", &self.prefixes);
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} (frozen: {})",
            self.inner.describe(),
            self.prefixes.join(", ")
        )
    }
}
