//! `ventral train`: trains a zoo model on a dataset, showing progress and leaving metrics,
//! checkpoints, plots and a resumable training state behind.

mod args;
mod evaluate;
mod history;
mod interrupt;
mod resume;
mod run;
mod schedule;
mod setup;
mod state;

pub use args::{LossKind, TrainArgs, RESUME_HELP};
pub use evaluate::{evaluate, EVAL_BATCH};
pub use run::run;
pub use setup::{check_model_name, default_data_dir};
