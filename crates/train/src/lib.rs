//! Ventral's training engine: a [`Trainer`] that owns the step (forward, loss, backward,
//! gradient averaging over a data-parallel [`Cluster`], optimizer, learning-rate schedule),
//! evaluation, checkpoints and the training state that resumes a run bit-identically,
//! stopping on request, and reports through [`Callback`]s.
//!
//! The `ventral` command's `train`, `bench train` and `visualize boundary` all train through
//! it; the command adds only its listeners (progress bar, `metrics.jsonl`, plots, Ctrl-C).
//!
//! # Example: LeNet-5 on MNIST, with a callback
//!
//! ```no_run
//! use std::path::Path;
//! use ventral_nn::data::{self, DataLoader, Split};
//! use ventral_nn::optim::{Sgd, SgdConfig};
//! use ventral_train::{Callback, EpochEnd, FitOptions, ScheduleKind, Trainer};
//!
//! /// Prints the test accuracy after every epoch.
//! struct Report;
//! impl Callback for Report {
//!     fn on_epoch_end(&mut self, e: &EpochEnd) {
//!         println!("epoch {}: {:.2} %", e.epoch + 1, 100.0 * e.test.accuracy);
//!     }
//! }
//!
//! let dir = Path::new("data/mnist");
//! let (train, test) = (data::load("mnist", dir, Split::Train)?, data::load("mnist", dir, Split::Test)?);
//! let (mean, std) = train.channel_mean_std();
//! let model = ventral_models::build("lenet5", 10, 0)?;
//! let sgd = Sgd::new(SgdConfig { momentum: 0.9, ..SgdConfig::new(0.05) })?;
//! let mut trainer = Trainer::new(model, Box::new(sgd), 10).with_schedule(ScheduleKind::Cosine);
//! let train = DataLoader::new(train, 64)?.shuffle().normalize(mean.clone(), std.clone())?;
//! let test = DataLoader::new(test, 100)?.normalize(mean, std)?;
//! trainer.fit(&train, &test, &FitOptions::for_epochs(2), &mut [&mut Report])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod accumulate;
mod callback;
mod cluster;
mod early_stop;
mod ema;
mod error;
mod evaluate;
mod fit;
mod loss;
mod run_dir;
mod schedule;
mod state;
mod trainer;

pub use callback::{Callback, CheckpointKind, CheckpointSaved, EpochEnd, EpochStart, StepEnd};
pub use cluster::Cluster;
pub use early_stop::{EarlyStopping, Monitor};
pub use ema::EMA_FILE;
pub use error::{Result, TrainError};
pub use evaluate::{EVAL_BATCH, Evaluation, argmax_rows, evaluate, predict};
pub use fit::{FitEnd, FitOptions};
pub use loss::Loss;
pub use run_dir::remove_stale_temps;
pub use schedule::{ScheduleKind, learning_rate};
pub use state::{STATE_FILE, TrainState};
pub use trainer::{OPTIMIZER_SPAN, StepData, StepOutput, Trainer};
