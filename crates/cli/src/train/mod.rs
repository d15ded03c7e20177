//! `ventral train`: trains a zoo model on a dataset with the library's `Trainer`, showing
//! progress and leaving metrics, checkpoints, plots and a resumable training state behind.

mod adapt;
mod args;
mod controls;
mod data_options;
mod history;
mod interrupt;
mod listen;
mod resume;
mod run;
mod setup;
mod source;
mod tensorboard;

pub use adapt::{RunModel, run_for};
pub use args::{LossKind, RESUME_HELP, TrainArgs};
pub use run::run;
pub use setup::{check_model_name, default_data_dir};
pub use ventral_train::EVAL_BATCH;

use ventral_nn::Module;
use ventral_nn::data::{DataLoader, Dataset};
use ventral_train::Evaluation;

/// [`ventral_train::evaluate`] with the command's loss names (`ventral eval`).
///
/// # Errors
/// If the model rejects the data.
pub fn evaluate<D: Dataset + Send + Sync + 'static>(
    model: &mut dyn Module,
    loader: &DataLoader<D>,
    loss: LossKind,
    classes: usize,
) -> anyhow::Result<Evaluation> {
    Ok(ventral_train::evaluate(
        model,
        loader,
        loss.into(),
        classes,
    )?)
}
