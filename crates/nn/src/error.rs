//! The error type of `ventral-nn`: autograd and kernel errors, wrapped with the layer path
//! where they happened, plus checkpoint, data and configuration problems.

use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::data::DataError;

/// Anything that can go wrong building, running, saving or feeding a model.
#[derive(Debug, Error)]
pub enum Error {
    /// An op failed (its message names the op and the shapes).
    #[error(transparent)]
    Autograd(#[from] ventral_autograd::Error),
    /// A layer failed; `path` is its dotted name in the model (`features.3`), `layer` its
    /// description (`Conv2d(64→128, 3x3)`).
    #[error("{}{layer}: {source}", if path.is_empty() { String::new() } else { format!("{path} ") })]
    Layer {
        /// Dotted path of the layer in its model.
        path: String,
        /// What the layer is.
        layer: String,
        /// The underlying failure.
        source: Box<Error>,
    },
    /// A layer was given an input of the wrong shape (wrapped in [`Error::Layer`] by the
    /// layer, so the message names it).
    #[error("expected input {expected}, got {got:?}")]
    BadInput {
        /// The shape it accepts, e.g. `[N, 64, H, W]`.
        expected: String,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Loading data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A hyper-parameter or configuration that makes no sense (a negative learning rate, …).
    #[error("{what}: {detail}")]
    Config {
        /// The setting or component.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl Error {
    /// Wraps an error with the path and description of the layer it came from; an error that
    /// already names a deeper layer gets the outer path prepended (`features` + `3` →
    /// `features.3`).
    pub fn in_layer(self, path: &str, layer: &str) -> Error {
        match self {
            Error::Layer {
                path: inner,
                layer: inner_layer,
                source,
            } => Error::Layer {
                // A layer reports itself with an empty path; its container supplies it.
                path: if inner.is_empty() {
                    path.to_string()
                } else {
                    crate::module::join(path, &inner)
                },
                layer: inner_layer,
                source,
            },
            other => Error::Layer {
                path: path.to_string(),
                layer: layer.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// A configuration error.
    pub fn config(what: &'static str, detail: impl Into<String>) -> Error {
        Error::Config {
            what,
            detail: detail.into(),
        }
    }
}

/// The result type of `ventral-nn`.
pub type Result<T> = std::result::Result<T, Error>;
