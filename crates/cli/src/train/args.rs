//! The flags of `ventral train`, with defaults that give a good LeNet-5 run on MNIST.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::data_options::DataOptions;

/// Arguments of `ventral train`.
///
/// `config.json` in the output directory stores them (serde names = flag names with `_`),
/// which is how `--resume` recovers a run's settings.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Model to train (`ventral models` lists them).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Dataset: mnist, fashion-mnist, cifar10, digits, csv:PATH, or folder:DIR (image
    /// folders: DIR/train/<class>/*.png|jpg, DIR/val/… or --val-split).
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
    /// Learning rate (the peak rate with `--schedule onecycle`).
    #[arg(long, default_value_t = 0.05, value_parser = parse_non_negative, allow_negative_numbers = true)]
    pub lr: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4, value_parser = parse_non_negative, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// Clip each step's gradients to this joint L2 norm (PyTorch's `clip_grad_norm_`).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    #[serde(default)]
    pub clip_grad_norm: Option<f32>,
    /// Micro-batches per optimizer step (gradient accumulation): each step is that of one
    /// batch of N × --batch-size; the schedule and --save-every count optimizer steps.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    #[serde(default)]
    pub accumulate: Option<u32>,
    /// Label smoothing of the cross-entropy loss (PyTorch's `label_smoothing`), in [0, 1).
    #[arg(long, value_name = "EPS", value_parser = parse_smoothing, allow_negative_numbers = true)]
    #[serde(default)]
    pub label_smoothing: Option<f32>,
    /// Keep an exponential moving average of the weights with this decay, in (0, 1):
    /// evaluated after every epoch and saved as ema.safetensors.
    #[arg(long, value_name = "DECAY", value_parser = parse_decay, allow_negative_numbers = true)]
    #[serde(default)]
    pub ema: Option<f32>,
    /// Stop once the test loss (see --early-stop-metric) has not improved for this many
    /// epochs in a row.
    #[arg(long, value_name = "PATIENCE", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default)]
    pub early_stop: Option<u64>,
    /// What --early-stop watches.
    #[arg(long, value_enum, default_value_t = EarlyStopMetric::Loss)]
    #[serde(default)]
    pub early_stop_metric: EarlyStopMetric,
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
    /// Train on only the first N samples (quick experiments; on an image folder, N spread
    /// evenly over its classes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_train: Option<u64>,
    /// Evaluate on only the first N test samples (quick experiments; on an image folder, N
    /// spread evenly over its classes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default)]
    pub limit_test: Option<u64>,
    /// Keep the dataset order instead of shuffling each epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Start from the weights in this state dict: safetensors, or a PyTorch `torch.save`
    /// file (`.pth`, read natively, nothing executed).
    #[arg(long)]
    pub init: Option<PathBuf>,
    // Adapting a zoo model and fine-tuning (see train/adapt.rs and README "Fine-tuning").
    /// Input channels of the model's stem (default: the zoo's), e.g. 1 for ResNet-20 on
    /// Fashion-MNIST: the first convolution is rebuilt, every other layer keeps its names.
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    #[serde(default)]
    pub in_channels: Option<u32>,
    /// Outputs of the classifier head (default: the dataset's classes); the head is rebuilt.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    #[serde(default)]
    pub num_classes: Option<u32>,
    /// With --init: load only the tensors whose name and shape match (a replaced head starts
    /// fresh) and print what was loaded, skipped, mismatched and missing.
    #[arg(long, requires = "init")]
    #[serde(default)]
    pub init_partial: bool,
    /// Keep the parameters under these module paths fixed (`conv1`, `features`, `layer1.0`;
    /// repeatable or comma-separated): no gradient, no optimizer state, batch norms there
    /// stay in eval mode.
    #[arg(long, value_name = "PREFIX", value_delimiter = ',')]
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Train and test on these classes only, relabelled 0..n in the order given: `0-4`,
    /// `5,6,7,8,9`, `3,1,0-2`.
    #[arg(long, value_name = "LIST", value_parser = super::adapt::parse_classes)]
    #[serde(default)]
    pub classes: Option<super::adapt::ClassList>,
    /// Where to write metrics, checkpoints and plots.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Continue the interrupted or finished run in DIR exactly where it stopped, with the
    /// settings of its config.json (see below).
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Check every op for NaN or inf: a loss that blows up then names the op and layer
    /// where it started (slower).
    #[arg(long)]
    #[serde(default)]
    pub anomaly: bool,
    /// Data-parallel training over MPI: run under `mpirun -np N`; each process takes 1/N of
    /// every batch and the gradients are averaged before each step (needs a build with
    /// `--features mpi`).
    #[arg(long)]
    #[serde(default)]
    pub distributed: bool,
    /// Hide the progress bar.
    #[arg(long)]
    #[serde(default)]
    pub quiet: bool,
    /// Also save the training state every N steps (it is always saved before the first
    /// step, after every epoch and on Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default)]
    pub save_every: Option<u64>,
    /// Replace the run already in --out (without it, a directory holding a run is refused).
    #[arg(long)]
    #[serde(skip)]
    pub overwrite: bool,
    /// Image folders and augmentation (`data_options.rs`).
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataOptions,
    /// Stop after N steps of this invocation as if Ctrl-C had been pressed (for tests and
    /// scripted checkpoints).
    #[arg(long, hide = true, value_name = "N")]
    #[serde(skip)]
    pub stop_after_steps: Option<u64>,
}

/// The long help after the flags of `ventral train`.
pub const RESUME_HELP: &str = "\
Checkpoints and resuming:
  Before the first step, every --save-every N steps, after every epoch, and when Ctrl-C
  stops a run (it finishes the current step, saves and exits with code 130), the output
  directory receives train_state.safetensors: the model
  (with each dropout layer's position in its random stream), the optimizer state (under `optimizer.`), the epoch, step, next batch, seed and the
  epoch's sample order. `ventral train --resume DIR` restores all of it and continues
  mid-epoch, bit-identically to a run that was never stopped (at any thread count).
  The settings come from DIR/config.json; repeating a flag with the same value is fine,
  a different value is an error. Only --epochs may change (to train a finished run
  further; the schedule is then laid over the new total), and --threads, --quiet,
  --anomaly, --save-every and --distributed (a run saved by N processes continues on any
  number that divides --batch-size, or on one). The whole state is checked against the
  model, optimizer and data before anything is restored.
  A directory that already holds a run is never written over by a new one unless
  --overwrite is given. Temporary files left by killed writes are removed when a run
  starts there. A plot or metrics file that cannot be written is reported in one line
  after the training state is safe, and training goes on.

A loss that becomes NaN or infinite stops the run with the step number (with --anomaly,
the first op and layer that produced a NaN or inf); the checkpoints already saved stay
untouched.";

/// What `--early-stop` watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyStopMetric {
    /// The test loss, lower is better (PyTorch Lightning's usual `val_loss`).
    #[default]
    Loss,
    /// The test accuracy, higher is better.
    Accuracy,
}

/// The update rules `--optimizer` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
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
    /// RMSprop (alpha 0.99).
    Rmsprop,
}

/// The schedules `--schedule` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// A constant learning rate.
    None,
    /// Divide by 10 at 50 % and 75 % of the run.
    Step,
    /// Cosine annealing to zero over the run.
    Cosine,
    /// One cycle (Smith 2018): warm up to --lr over 30 % of the run, then anneal.
    Onecycle,
}

/// The losses `--loss` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
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

fn parse_positive(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {s}"))
    }
}

fn parse_smoothing(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be a number in [0, 1), got {s}"))
    }
}

fn parse_decay(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("must be a number in (0, 1), got {s}"))
    }
}

impl From<LossKind> for ventral_train::Loss {
    fn from(kind: LossKind) -> Self {
        match kind {
            LossKind::CrossEntropy => Self::CrossEntropy,
            LossKind::Hinge => Self::Hinge,
            LossKind::Mse => Self::Mse,
        }
    }
}

impl From<ScheduleKind> for ventral_train::ScheduleKind {
    fn from(kind: ScheduleKind) -> Self {
        match kind {
            ScheduleKind::None => Self::None,
            ScheduleKind::Step => Self::Step,
            ScheduleKind::Cosine => Self::Cosine,
            ScheduleKind::Onecycle => Self::Onecycle,
        }
    }
}
