//! The flags of `ventral train`, with defaults that give a good LeNet-5 run on MNIST.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

/// Arguments of `ventral train`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TrainArgs {
    /// Model to train (`ventral models` lists them).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Dataset: mnist, fashion-mnist, cifar10, digits, or csv:PATH.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Directory holding the dataset's files (default: the repository's `data/<dataset>`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub epochs: u32,
    /// Samples per step.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Momentum)]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05, value_parser = parse_non_negative)]
    pub lr: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4, value_parser = parse_non_negative)]
    pub weight_decay: f32,
    /// Learning-rate schedule over the whole run.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Cosine)]
    pub schedule: ScheduleKind,
    /// Training loss.
    #[arg(long, value_enum, default_value_t = LossKind::CrossEntropy)]
    pub loss: LossKind,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Seed for initialisation, shuffling and dropout: the same seed and thread count give
    /// bit-identical runs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on only the first N samples (quick experiments).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_train: Option<u64>,
    /// Keep the dataset order instead of shuffling each epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Start from the weights in this safetensors state dict.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Where to write metrics, checkpoints and plots.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The update rules `--optimizer` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain gradient descent.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nesterov,
    /// Adam.
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// The schedules `--schedule` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// A constant learning rate.
    None,
    /// Divide by 10 at 50 % and 75 % of the run.
    Step,
    /// Cosine annealing to zero over the run.
    Cosine,
}

/// The losses `--loss` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Cross-entropy of the logits.
    CrossEntropy,
    /// The multiclass hinge loss (a linear SVM's).
    Hinge,
    /// Mean squared error against one-hot targets.
    Mse,
}

fn parse_non_negative(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number >= 0, got {s}"))
    }
}
