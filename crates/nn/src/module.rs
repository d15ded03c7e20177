//! The `Module` trait: what every layer and model implements, and the state-dict plumbing
//! built on it.
//!
//! A module exposes its tensors through [`Module::visit`] in a fixed order with dotted names,
//! exactly as PyTorch's `state_dict()` names them (`features.0.weight`,
//! `layer1.0.bn1.running_mean`). Everything else — parameter lists for optimizers, state
//! dicts, strict loading, parameter counts — is derived from that one walk.

use ventral_autograd::Tensor;

use crate::checkpoint::{DType, StateDict, TensorData, TensorRecord};
use crate::error::{Error, Result};

pub use ventral_autograd::Mode;

/// What a named slot of a module holds.
#[derive(Debug)]
pub enum Slot<'a> {
    /// A trainable parameter.
    Parameter(&'a mut Tensor),
    /// A tensor that is state but not trained (BatchNorm's running statistics).
    Buffer(&'a mut Tensor),
    /// An integer counter kept in checkpoints (BatchNorm's `num_batches_tracked`, int64).
    Counter(&'a mut i64),
    /// A layer's position in its random-number stream (Dropout's mask counter): saved in
    /// training checkpoints so a resumed run draws the same masks, but not part of the state
    /// dict, which PyTorch defines without it.
    Rng(&'a mut u64),
}

/// A layer or a model: a forward pass plus named state.
///
/// A *leaf* (a layer holding tensors) implements [`Module::visit`] for its own slots. A
/// *container* implements [`Module::for_each_child`] once, listing each child with its local
/// name in state-dict order, and gets [`Module::visit`] and [`Module::set_mode`] from it: a child
/// listed there is saved, loaded, counted and switched to eval mode, so no walk can forget it.
/// A layer whose behaviour depends on the mode (dropout, batch norm) overrides
/// [`Module::set_mode`] and reports its mode through [`Module::mode`].
pub trait Module: Send + Sync {
    /// Runs the module on `x`.
    ///
    /// # Errors
    /// A shape or op error, naming the layer path where it happened.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Calls `f` with each direct child and its local name (`features`, `0`, `layer1`), in
    /// state-dict order. Leaves have no children (the default).
    fn for_each_child(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        let _ = f;
    }

    /// Calls `f` with each parameter, buffer and counter, named `prefix` + local name, in
    /// state-dict order. The default walks the children of [`Module::for_each_child`], each
    /// with `prefix.child` as its prefix; leaves override it to list their own slots.
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        self.for_each_child(&mut |name, child| child.visit(&join(prefix, name), f));
    }

    /// Switches training behaviour (dropout, batch statistics) on or off, recursively. The
    /// default passes `mode` to every child of [`Module::for_each_child`]; layers with a mode
    /// of their own override it.
    fn set_mode(&mut self, mode: Mode) {
        self.for_each_child(&mut |_, child| child.set_mode(mode));
    }

    /// The mode this module itself is in, for a module whose behaviour depends on one
    /// (`Dropout`, batch norm); `None` for the others, containers included (ask their
    /// children, e.g. through [`modes`]).
    fn mode(&self) -> Option<Mode> {
        None
    }

    /// The layer as [`std::any::Any`], for a container that recognises layer patterns it can
    /// run fused (`Conv2d → BatchNorm2d → ReLU` in [`crate::layers::Sequential`]). `None`
    /// (the default) for modules no pattern names.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// A one-line description, as PyTorch prints it (`Conv2d(1→6, 5x5, padding 2)`).
    fn describe(&self) -> String;
}

/// The dotted path and mode of every module under `module` (itself included, named `prefix`)
/// that has a mode of its own ([`Module::mode`]), in walk order: how a test or a tool checks
/// that `set_mode` reached every dropout and batch norm.
pub fn modes(module: &mut dyn Module, prefix: &str) -> Vec<(String, Mode)> {
    let mut out = Vec::new();
    if let Some(mode) = module.mode() {
        out.push((prefix.to_string(), mode));
    }
    module.for_each_child(&mut |name, child| out.extend(modes(child, &join(prefix, name))));
    out
}

/// Runs `module.forward`, naming `path` and the module in any error.
///
/// # Errors
/// The module's error, wrapped with the path.
pub fn forward_named(module: &dyn Module, path: &str, x: &Tensor) -> Result<Tensor> {
    module
        .forward(x)
        .map_err(|e| e.in_layer(path, &module.describe()))
}

/// Joins a prefix and a local name with a dot (`""` + `weight` = `weight`; `fc` + `""` = `fc`,
/// for a child that adds no name of its own).
pub fn join(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The trainable parameters, in state-dict order, with their names.
pub fn named_parameters(module: &mut dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    module.visit("", &mut |name, slot| {
        if let Slot::Parameter(t) = slot {
            out.push((name.to_string(), t.clone()));
        }
    });
    out
}

/// Total number of trainable parameter values (torchvision's parameter counts).
pub fn parameter_count(module: &mut dyn Module) -> usize {
    named_parameters(module)
        .iter()
        .map(|(_, t)| t.numel())
        .sum()
}

/// Which slots a walk over the module's state takes in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// PyTorch's `state_dict()`: parameters, buffers and counters.
    StateDict,
    /// Everything a resumed run needs: the state dict plus random-number positions.
    Training,
}

fn collect(module: &mut dyn Module, scope: Scope) -> StateDict {
    let mut state = StateDict::new();
    module.visit("", &mut |name, slot| {
        let record = match slot {
            Slot::Parameter(t) | Slot::Buffer(t) => {
                TensorRecord::new(name, t.dims().to_vec(), TensorData::F32(t.to_vec()))
            }
            Slot::Counter(c) => TensorRecord::new(name, vec![], TensorData::I64(vec![*c])),
            Slot::Rng(_) if scope == Scope::StateDict => return,
            Slot::Rng(r) => TensorRecord::new(name, vec![], TensorData::I64(vec![*r as i64])),
        };
        state.insert(name, record.expect("a tensor's values match its shape"));
    });
    state
}

fn layout(module: &mut dyn Module, scope: Scope) -> Vec<(String, Vec<usize>, DType)> {
    let mut out = Vec::new();
    module.visit("", &mut |name, slot| {
        out.push(match slot {
            Slot::Parameter(t) | Slot::Buffer(t) => {
                (name.to_string(), t.dims().to_vec(), DType::F32)
            }
            Slot::Counter(_) => (name.to_string(), vec![], DType::I64),
            Slot::Rng(_) if scope == Scope::StateDict => return,
            Slot::Rng(_) => (name.to_string(), vec![], DType::I64),
        });
    });
    out
}

fn restore(module: &mut dyn Module, state: &StateDict, scope: Scope) -> Result<()> {
    let mut expected = layout(module, scope);
    if scope == Scope::StateDict {
        // As PyTorch's BatchNorm loads a state dict from before `num_batches_tracked`
        // existed (torchvision's published weights, many converted files): a missing counter
        // is not an error, it starts at 0.
        expected.retain(|(k, _, d)| *d != DType::I64 || state.get(k).is_some());
    }
    state.check_matches(
        expected
            .iter()
            .map(|(k, s, d)| (k.as_str(), s.as_slice(), *d)),
    )?;
    let mut failure = None;
    module.visit("", &mut |name, slot| {
        if matches!(slot, Slot::Rng(_)) && scope == Scope::StateDict {
            return;
        }
        let Some(record) = state.get(name) else {
            // Only a counter can be absent here (checked above).
            if let Slot::Counter(c) = slot {
                *c = 0;
            }
            return;
        };
        let result = match (slot, record.data()) {
            (Slot::Parameter(t) | Slot::Buffer(t), TensorData::F32(values)) => t
                .update(|dst| dst.copy_from_slice(values))
                .map_err(Error::from),
            (Slot::Counter(c), TensorData::I64(values)) => {
                *c = values[0];
                Ok(())
            }
            (Slot::Rng(r), TensorData::I64(values)) => {
                *r = values[0] as u64;
                Ok(())
            }
            _ => unreachable!("dtypes checked above"),
        };
        if let Err(e) = result
            && failure.is_none()
        {
            failure = Some(e);
        }
    });
    failure.map_or(Ok(()), Err)
}

/// The module's state dict: parameters, buffers and counters, in order, as PyTorch names them.
pub fn state_dict(module: &mut dyn Module) -> StateDict {
    collect(module, Scope::StateDict)
}

/// The keys, shapes and dtypes a state dict for this module must have.
pub fn state_dict_layout(module: &mut dyn Module) -> Vec<(String, Vec<usize>, DType)> {
    layout(module, Scope::StateDict)
}

/// Loads `state` into the module, strictly: every key must exist with the same shape and
/// dtype, and no key may be left over (PyTorch's `load_state_dict(strict=True)`). As in
/// PyTorch, a state dict without BatchNorm's `num_batches_tracked` counters loads: those
/// counters start at 0.
///
/// # Errors
/// [`crate::checkpoint::CheckpointError::Mismatch`] listing every problem; nothing is
/// changed when the state dict does not match.
pub fn load_state_dict(module: &mut dyn Module, state: &StateDict) -> Result<()> {
    restore(module, state, Scope::StateDict)
}

/// The state dict plus every layer's random-number position ([`Slot::Rng`], e.g. each
/// Dropout's mask counter, as I64 scalars): what a training checkpoint must hold for a resumed
/// run to draw the same masks as one never stopped.
pub fn training_state(module: &mut dyn Module) -> StateDict {
    collect(module, Scope::Training)
}

/// Restores what [`training_state`] saved, strictly.
///
/// # Errors
/// As [`load_state_dict`], counting the random-number entries as keys.
pub fn load_training_state(module: &mut dyn Module, state: &StateDict) -> Result<()> {
    restore(module, state, Scope::Training)
}
