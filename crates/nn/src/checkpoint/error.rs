//! What can go wrong reading, writing or matching a checkpoint.

use std::path::PathBuf;

use thiserror::Error;

use super::state_dict::DType;

/// A checkpoint problem, naming the file or the offending keys.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The file could not be read, written, flushed or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file, or holds a dtype Ventral does not use.
    #[error("{path}: not a valid checkpoint: {detail}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A PyTorch checkpoint (`torch.save` zip archive) that cannot be read.
    #[error("{path}: not a loadable PyTorch checkpoint: {source}")]
    Pth {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        source: super::pth::PthError,
    },
    /// The tensor data is larger than
    /// [`Limits::checkpoint_bytes`](crate::limits::Limits::checkpoint_bytes).
    #[error(
        "{path}: {bytes} bytes of tensors, more than the {limit}-byte limit (VENTRAL_MAX_CHECKPOINT_BYTES raises it)"
    )]
    TooLarge {
        /// The file involved.
        path: PathBuf,
        /// The tensor bytes its header declares.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A limit's environment variable is set to nonsense.
    #[error(transparent)]
    Limit(crate::limits::InvalidLimit),
    /// An f32 tensor holds NaN or infinity.
    #[error(
        "tensor `{name}` holds {count} non-finite values (the first, at index {index}, is {value})"
    )]
    NonFinite {
        /// The key.
        name: String,
        /// Index of the first non-finite value.
        index: usize,
        /// That value.
        value: f32,
        /// How many values are not finite.
        count: usize,
    },
    /// A tensor's data does not match its own shape.
    #[error("tensor `{name}`: shape {shape:?} needs {expected} values, got {actual}")]
    BadRecord {
        /// The key.
        name: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// Values the shape needs.
        expected: usize,
        /// Values present.
        actual: usize,
    },
    /// A state dict does not fit the model it is loaded into.
    #[error("{}", describe_mismatch(.missing, .unexpected, .wrong_shape, .wrong_dtype))]
    Mismatch {
        /// Keys the model has and the checkpoint lacks.
        missing: Vec<String>,
        /// Keys the checkpoint has and the model lacks.
        unexpected: Vec<String>,
        /// `(key, expected shape, checkpoint shape)`.
        wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
        /// `(key, expected dtype, checkpoint dtype)`.
        wrong_dtype: Vec<(String, DType, DType)>,
    },
}

fn describe_mismatch(
    missing: &[String],
    unexpected: &[String],
    wrong_shape: &[(String, Vec<usize>, Vec<usize>)],
    wrong_dtype: &[(String, DType, DType)],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing keys: {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected keys: {}", unexpected.join(", ")));
    }
    for (key, want, got) in wrong_shape {
        parts.push(format!(
            "`{key}` has shape {got:?}, the model needs {want:?}"
        ));
    }
    for (key, want, got) in wrong_dtype {
        parts.push(format!("`{key}` is {got}, the model needs {want}"));
    }
    format!("state dict does not match the model: {}", parts.join("; "))
}
