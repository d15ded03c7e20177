//! Loading what fits: PyTorch's `load_state_dict(strict=False)`, which fine-tuning uses to
//! start a model with a replaced head (or stem) from weights trained for another task.

use std::collections::HashSet;
use std::fmt;

use crate::checkpoint::{DType, StateDict, TensorData};
use crate::error::Result;
use crate::module::{Module, Slot};

/// What [`load_state_dict_partial`] did with each key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys of the model loaded from the state dict (same name, shape and dtype).
    pub loaded: Vec<String>,
    /// Keys of the state dict the model does not have: ignored.
    pub skipped: Vec<String>,
    /// Keys both have with another shape (or dtype): `(key, shape in the state dict, shape
    /// in the model)`. The model's tensor keeps its fresh values.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Keys of the model the state dict lacks: they keep their fresh values. BatchNorm's
    /// `num_batches_tracked` counters are not listed: a missing one starts at 0, as in a
    /// strict load.
    pub missing: Vec<String>,
}

impl fmt::Display for LoadReport {
    /// `loaded 8; skipped 0; mismatched 2 (fc3.weight [10, 84] in the file, [5, 84] in the
    /// model, …); missing 0`: one line, each list cut to its first 8 keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A ResNet-152 has 900 keys: name the first few of a list, count the rest.
        const SHOWN: usize = 8;
        let list = |keys: &[String]| match keys.len() {
            0 => String::new(),
            n if n <= SHOWN => format!(" ({})", keys.join(", ")),
            n => format!(" ({}, and {} more)", keys[..SHOWN].join(", "), n - SHOWN),
        };
        let mismatched: Vec<String> = self
            .mismatched
            .iter()
            .map(|(k, file, model)| format!("{k} {file:?} in the file, {model:?} in the model"))
            .collect();
        write!(
            f,
            "loaded {}; skipped {}{}; mismatched {}{}; missing {}{}",
            self.loaded.len(),
            self.skipped.len(),
            list(&self.skipped),
            self.mismatched.len(),
            list(&mismatched),
            self.missing.len(),
            list(&self.missing)
        )
    }
}

/// Loads every tensor of `state` whose key the module has with the same shape and dtype,
/// leaves the module's other tensors as they are, and reports each key's fate: PyTorch's
/// `model.load_state_dict(state, strict=False)` — which, unlike this, raises on a shape
/// mismatch; here a mismatched tensor (a replaced head) is reported and keeps its fresh
/// values, as timm's pretrained loading does for a new classifier. A missing BatchNorm
/// counter starts at 0.
///
/// ```
/// use ventral_nn::layers::{Linear, Sequential};
/// use ventral_nn::{Init, load_state_dict_partial, state_dict};
///
/// let init = &mut Init::new(0);
/// let mut ten = Sequential::new().push(Linear::new(4, 8, true, init)?).push(Linear::new(8, 10, true, init)?);
/// let mut five = Sequential::new().push(Linear::new(4, 8, true, init)?).push(Linear::new(8, 5, true, init)?);
/// let report = load_state_dict_partial(&mut five, &state_dict(&mut ten))?;
/// assert_eq!(report.loaded, ["0.weight", "0.bias"]);
/// assert_eq!(report.mismatched[0], ("1.weight".to_string(), vec![10, 8], vec![5, 8]));
/// # Ok::<(), ventral_nn::Error>(())
/// ```
///
/// # Errors
/// Only if a tensor cannot be written (it is the result of a recorded op).
pub fn load_state_dict_partial(module: &mut dyn Module, state: &StateDict) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut seen = HashSet::new();
    let mut failure = None;
    module.visit("", &mut |name, slot| {
        let (shape, dtype) = match &slot {
            Slot::Parameter(t) | Slot::Buffer(t) => (t.dims().to_vec(), DType::F32),
            Slot::Counter(_) => (Vec::new(), DType::I64),
            // Not part of a state dict.
            Slot::Rng(_) => return,
        };
        seen.insert(name.to_string());
        let Some(record) = state.get(name) else {
            match slot {
                Slot::Counter(c) => *c = 0,
                _ => report.missing.push(name.to_string()),
            }
            return;
        };
        if record.shape() != shape.as_slice() || record.dtype() != dtype {
            report
                .mismatched
                .push((name.to_string(), record.shape().to_vec(), shape));
            return;
        }
        let result = match (slot, record.data()) {
            (Slot::Parameter(t) | Slot::Buffer(t), TensorData::F32(values)) => {
                t.update(|dst| dst.copy_from_slice(values))
            }
            (Slot::Counter(c), TensorData::I64(values)) => {
                *c = values[0];
                Ok(())
            }
            _ => unreachable!("dtypes compared above"),
        };
        match result {
            Ok(()) => report.loaded.push(name.to_string()),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    report.skipped = state
        .keys()
        .filter(|k| !seen.contains(*k))
        .map(str::to_string)
        .collect();
    Ok(report)
}
