//! An ordered map of named tensors: what a model's `state_dict()` holds.

use std::fmt;

use super::error::CheckpointError;

/// Element types a checkpoint holds: f32 parameters and buffers, and i64 counters (PyTorch
/// stores BatchNorm's `num_batches_tracked` as int64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer.
    I64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "F32",
            DType::I64 => "I64",
        })
    }
}

/// The values of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// f32 values, row-major.
    F32(Vec<f32>),
    /// i64 values, row-major.
    I64(Vec<i64>),
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named tensor: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRecord {
    shape: Vec<usize>,
    data: TensorData,
}

impl TensorRecord {
    /// A tensor of `shape` holding `data` (row-major).
    ///
    /// # Errors
    /// [`CheckpointError::BadRecord`] if the number of values does not match the shape.
    pub fn new(name: &str, shape: Vec<usize>, data: TensorData) -> Result<Self, CheckpointError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX);
        if expected != data.len() {
            return Err(CheckpointError::BadRecord {
                name: name.to_string(),
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The f32 values, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I64(_) => None,
        }
    }

    /// The i64 values, if this is an i64 tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            TensorData::F32(_) => None,
        }
    }
}

/// Named tensors in a fixed order (a model's parameters and buffers in `state_dict()` order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, TensorRecord)>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state dict of `entries` as they are, which the caller guarantees have distinct
    /// names (a safetensors header cannot repeat one): no quadratic search for duplicates.
    pub(crate) fn from_unique(entries: Vec<(String, TensorRecord)>) -> Self {
        Self { entries }
    }

    /// Checks that every f32 value is finite: weights holding NaN or infinity (a diverged
    /// run) give NaN outputs and meaningless accuracies, so evaluating them is an error.
    ///
    /// # Errors
    /// [`CheckpointError::NonFinite`] naming the first tensor with such a value.
    pub fn check_finite(&self) -> Result<(), CheckpointError> {
        for (name, record) in self.iter() {
            if let Some(values) = record.as_f32() {
                let bad = values.iter().filter(|v| !v.is_finite()).count();
                if let Some((index, &value)) =
                    values.iter().enumerate().find(|(_, v)| !v.is_finite())
                {
                    return Err(CheckpointError::NonFinite {
                        name: name.to_string(),
                        index,
                        value,
                        count: bad,
                    });
                }
            }
        }
        Ok(())
    }

    /// Adds or replaces `name`; a new key goes to the end.
    pub fn insert(&mut self, name: impl Into<String>, record: TensorRecord) {
        let name = name.into();
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = record,
            None => self.entries.push((name, record)),
        }
    }

    /// The tensor stored under `name`.
    pub fn get(&self, name: &str) -> Option<&TensorRecord> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, r)| r)
    }

    /// Keys and tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TensorRecord)> {
        self.entries.iter().map(|(k, r)| (k.as_str(), r))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of values over all tensors.
    pub fn numel(&self) -> usize {
        self.entries.iter().map(|(_, r)| r.data.len()).sum()
    }

    /// Checks, strictly, that this state dict has exactly the keys of `expected` with the same
    /// shapes and dtypes: PyTorch's `load_state_dict(strict=True)`.
    ///
    /// # Errors
    /// [`CheckpointError::Mismatch`] listing every missing key, unexpected key, wrong shape
    /// and wrong dtype at once.
    pub fn check_matches<'a>(
        &self,
        expected: impl IntoIterator<Item = (&'a str, &'a [usize], DType)>,
    ) -> Result<(), CheckpointError> {
        let (mut missing, mut wrong_shape, mut wrong_dtype) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = Vec::new();
        for (key, shape, dtype) in expected {
            seen.push(key);
            match self.get(key) {
                None => missing.push(key.to_string()),
                Some(record) => {
                    if record.shape() != shape {
                        wrong_shape.push((
                            key.to_string(),
                            shape.to_vec(),
                            record.shape().to_vec(),
                        ));
                    }
                    if record.dtype() != dtype {
                        wrong_dtype.push((key.to_string(), dtype, record.dtype()));
                    }
                }
            }
        }
        let unexpected: Vec<String> = self
            .keys()
            .filter(|k| !seen.contains(k))
            .map(str::to_string)
            .collect();
        if missing.is_empty()
            && unexpected.is_empty()
            && wrong_shape.is_empty()
            && wrong_dtype.is_empty()
        {
            Ok(())
        } else {
            Err(CheckpointError::Mismatch {
                missing,
                unexpected,
                wrong_shape,
                wrong_dtype,
            })
        }
    }
}
