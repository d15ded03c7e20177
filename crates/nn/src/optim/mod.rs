//! Optimizers: the update rules of `torch.optim`, applied to a module's parameters from a
//! [`Gradients`] store, with state that can be saved and restored for exact resumption.
//!
//! Each optimizer keeps per-parameter state in the module's parameter order. Update equations
//! follow PyTorch's documentation, written out in each type's docs.

mod adam;
mod clip;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamW};
pub use clip::clip_grad_norm;
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{LrScheduler, Schedule};
pub use sgd::{Sgd, SgdConfig};

use ventral_autograd::{Gradients, Tensor, no_grad};

use crate::checkpoint::{DType, StateDict, TensorData, TensorRecord};
use crate::error::{Error, Result};
use crate::module::{Module, Slot};

/// One step of an update rule over all parameters.
pub trait Optimizer: Send {
    /// Updates every parameter of `module` that has a gradient in `grads`.
    ///
    /// # Errors
    /// If a gradient's shape does not match its parameter.
    fn step(&mut self, module: &mut dyn Module, grads: &Gradients) -> Result<()>;

    /// The learning rate used by the next step.
    fn learning_rate(&self) -> f32;

    /// Changes the learning rate (schedules call this between steps).
    fn set_learning_rate(&mut self, lr: f32);

    /// The optimizer's state (step count and per-parameter buffers) as named tensors.
    fn state_dict(&self) -> StateDict;

    /// Restores state saved by [`Optimizer::state_dict`] for the parameters of `module`.
    ///
    /// The whole state is checked first, against this update rule and `module`'s parameters:
    /// a non-negative `step`, and, once a step was taken, one buffer of the parameter's size
    /// per parameter for each buffer the rule keeps, and no other entry. A mismatch changes
    /// nothing, so a corrupt file can never leave a buffer of the wrong length behind.
    ///
    /// # Errors
    /// [`Error::Config`] (a bad `step`) or a
    /// [`Mismatch`](crate::checkpoint::CheckpointError::Mismatch) naming every missing,
    /// unexpected or misshapen entry.
    fn load_state_dict(&mut self, module: &mut dyn Module, state: &StateDict) -> Result<()>;
}

/// Calls `update(index, parameter, gradient)` for each parameter that requires a gradient and
/// has one, in order, with recording off; `index` counts every parameter, frozen ones too.
pub(crate) fn for_each_parameter(
    module: &mut dyn Module,
    grads: &Gradients,
    mut update: impl FnMut(usize, &mut Tensor, &[f32]) -> Result<()>,
) -> Result<()> {
    let mut index = 0;
    let mut failure = None;
    no_grad(|| {
        module.visit("", &mut |name, slot| {
            if let Slot::Parameter(p) = slot {
                // A frozen parameter (see `Frozen`) is never touched, whatever `grads` holds:
                // no weight decay, no momentum, no state.
                if let Some(g) = grads.get(p).filter(|_| p.requires_grad()) {
                    // Borrowed, not copied, for the usual contiguous gradient.
                    let g = g.values();
                    let result = if g.len() == p.numel() {
                        update(index, p, &g)
                    } else {
                        Err(Error::config(
                            "optimizer",
                            format!(
                                "gradient of `{name}` has {} values, the parameter {}",
                                g.len(),
                                p.numel()
                            ),
                        ))
                    };
                    if let Err(e) = result
                        && failure.is_none()
                    {
                        failure = Some(e);
                    }
                }
                index += 1;
            }
        });
    });
    failure.map_or(Ok(()), Err)
}

/// Per-parameter buffers as a state dict: `{prefix}.{index}` for each present buffer.
pub(crate) fn buffers_to_state(state: &mut StateDict, prefix: &str, buffers: &[Option<Vec<f32>>]) {
    for (i, buf) in buffers.iter().enumerate() {
        if let Some(b) = buf {
            let name = format!("{prefix}.{i}");
            let record =
                TensorRecord::new(&name, vec![b.len()], TensorData::F32(b.clone())).expect("1-D");
            state.insert(name, record);
        }
    }
}

/// The most parameter tensors an optimizer state may index (ResNet-152 has 467): the vector
/// of buffers is sized by the largest index, so a file's `momentum_buffer.4294967296` must
/// not size it (found by `tests/fuzz.rs`: 103 GB from a 700-byte file).
const MAX_PARAMETER_INDEX: usize = 1 << 14;

/// The inverse of [`buffers_to_state`].
///
/// # Errors
/// A buffer index of [`MAX_PARAMETER_INDEX`] or more.
pub(crate) fn buffers_from_state(state: &StateDict, prefix: &str) -> Result<Vec<Option<Vec<f32>>>> {
    let mut out: Vec<Option<Vec<f32>>> = Vec::new();
    for (name, record) in state.iter() {
        if let Some(index) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|i| i.parse::<usize>().ok())
        {
            if index >= MAX_PARAMETER_INDEX {
                return Err(Error::config(
                    "optimizer state",
                    format!("`{name}`: parameter index {index} is past {MAX_PARAMETER_INDEX}"),
                ));
            }
            if out.len() <= index {
                out.resize(index + 1, None);
            }
            out[index] = record.as_f32().map(<[f32]>::to_vec);
        }
    }
    Ok(out)
}

/// A scalar i64 entry (`step`).
pub(crate) fn step_to_state(state: &mut StateDict, step: u64) {
    state.insert(
        "step",
        TensorRecord::new("step", vec![], TensorData::I64(vec![step as i64])).expect("scalar"),
    );
}

/// Reads the `step` entry.
pub(crate) fn step_from_state(state: &StateDict) -> Result<u64> {
    let step = state
        .get("step")
        .and_then(|r| r.as_i64())
        .and_then(|v| v.first().copied())
        .ok_or_else(|| Error::config("optimizer state", "no `step` entry"))?;
    u64::try_from(step)
        .map_err(|_| Error::config("optimizer state", format!("`step` is {step}, below 0")))
}

/// Checks a whole optimizer state before anything is restored: `step` (an I64 scalar, not
/// negative) and, once a step was taken, `{prefix}.{i}` for every prefix of `buffers` and
/// every parameter `i` of `module` that requires a gradient (a frozen one has none), F32 with the parameter's number of values; no other key.
pub(crate) fn check_state(
    state: &StateDict,
    module: &mut dyn Module,
    buffers: &[&str],
) -> Result<u64> {
    let step = step_from_state(state)?;
    // A frozen parameter (one that requires no gradient) has no buffer.
    let sizes: Vec<Option<usize>> = crate::module::named_parameters(module)
        .iter()
        .map(|(_, p)| p.requires_grad().then(|| p.numel()))
        .collect();
    let mut expected: Vec<(String, Vec<usize>, DType)> = vec![("step".into(), vec![], DType::I64)];
    if step > 0 {
        for prefix in buffers {
            for (i, n) in sizes.iter().enumerate() {
                if let Some(n) = n {
                    expected.push((format!("{prefix}.{i}"), vec![*n], DType::F32));
                }
            }
        }
    }
    state
        .check_matches(
            expected
                .iter()
                .map(|(k, shape, dtype)| (k.as_str(), shape.as_slice(), *dtype)),
        )
        .map_err(|e| Error::config("optimizer state", e.to_string()))?;
    Ok(step)
}

/// Checks a learning rate or coefficient is finite and not negative.
pub(crate) fn check_non_negative(what: &'static str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            what,
            format!("must be a finite number >= 0, got {value}"),
        ))
    }
}
