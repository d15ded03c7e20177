//! `ventral train`: trains a zoo model on a dataset, showing progress and leaving metrics,
//! checkpoints and plots behind.

mod args;
mod evaluate;
mod run;
mod schedule;

pub use args::{LossKind, TrainArgs};
pub use evaluate::evaluate;
pub use run::{default_data_dir, run};
