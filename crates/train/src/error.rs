//! The error type of `ventral-train`.

use std::path::PathBuf;

use thiserror::Error;
use ventral_nn::checkpoint::CheckpointError;
use ventral_nn::data::DataError;

/// Anything that can stop a training run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A layer, op, optimizer or checkpoint failed (the message names it).
    #[error(transparent)]
    Nn(#[from] ventral_nn::Error),
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The data loader refused a request (e.g. a saved order that is not a permutation).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A step failed; the message says which one.
    #[error("at step {step}{}: {source}", position(*.epoch, *.batch))]
    Step {
        /// The step that failed, counted from 1 over the run.
        step: u64,
        /// Its epoch, from 0, when known.
        epoch: Option<u64>,
        /// Its batch within the epoch, from 0, when known.
        batch: Option<usize>,
        /// What failed.
        source: Box<ventral_nn::Error>,
    },
    /// The loss became NaN or infinite; the parameters were not updated by that step.
    #[error("the loss became {value} at step {step}{}; {}. Try a smaller learning rate", position(*.epoch, *.batch), kept_note(.kept.as_deref()))]
    NonFiniteLoss {
        /// The loss.
        value: f32,
        /// The step, counted from 1 over the run.
        step: u64,
        /// Its epoch, from 0, when known.
        epoch: Option<u64>,
        /// Its batch within the epoch, from 0, when known.
        batch: Option<usize>,
        /// The last good weights on disk, if any were saved.
        kept: Option<PathBuf>,
    },
    /// A saved training state does not fit the run being resumed.
    #[error("{}: {detail}", .path.display())]
    BadState {
        /// The training state file.
        path: PathBuf,
        /// What is wrong, naming the tensor.
        detail: String,
    },
    /// A setting of the trainer that no step can use (a label smoothing of 1, an
    /// accumulation of 0 micro-batches, …).
    #[error("{0}")]
    Config(String),
    /// The processes of a data-parallel job could not be joined or disagree.
    #[error("{0}")]
    Cluster(String),
    /// A file of the run directory could not be written or read.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done (`could not save`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

fn position(epoch: Option<u64>, batch: Option<usize>) -> String {
    match (epoch, batch) {
        (Some(e), Some(b)) => format!(" (epoch {}, batch {})", e + 1, b + 1),
        _ => String::new(),
    }
}

fn kept_note(kept: Option<&std::path::Path>) -> String {
    match kept {
        Some(p) => format!("the last good checkpoint, {}, is kept", p.display()),
        None => "no checkpoint had been saved yet".to_string(),
    }
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
