//! What can be wrong with a PyTorch checkpoint.

use thiserror::Error;

/// Why a `torch.save` file was refused. Every message is one line that says what was found
/// and, where it helps, what to do instead.
#[derive(Debug, Error, PartialEq)]
pub enum PthError {
    /// The zip archive is truncated, corrupt or uses a feature `torch.save` never writes.
    #[error("zip archive: {0}")]
    Archive(String),
    /// A file written by `torch.save` before PyTorch 1.6 (a bare pickle, no zip archive).
    #[error(
        "a legacy torch.save file (PyTorch < 1.6, not a zip archive); load and save it again with PyTorch >= 1.6"
    )]
    Legacy,
    /// A TorchScript archive (`torch.jit.save`): code, not a state dict.
    #[error(
        "a TorchScript archive (torch.jit.save) holds code, not a state dict; save torch.save(model.state_dict()) instead"
    )]
    TorchScript,
    /// The pickle names a global outside the allow-list; nothing is ever imported or run.
    #[error(
        "the pickle calls `{module}.{name}`, which is not allowed: only collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and torch.*Storage are read, and nothing is executed (a whole pickled model, torch.save(model), cannot be read: save model.state_dict())"
    )]
    Global {
        /// The global's module.
        module: String,
        /// Its name.
        name: String,
    },
    /// The pickle is malformed, too large or uses something a state dict does not need.
    #[error("data.pkl at byte {offset}: {detail}")]
    Pickle {
        /// Where in `data.pkl` the problem was found.
        offset: usize,
        /// What it is.
        detail: String,
    },
    /// The pickle is valid but holds no state dict.
    #[error("not a state dict: {0}")]
    NotStateDict(String),
    /// A tensor's dtype, view or storage does not fit.
    #[error("tensor `{name}`: {detail}")]
    Tensor {
        /// Its key.
        name: String,
        /// What is wrong.
        detail: String,
    },
}
