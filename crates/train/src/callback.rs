//! What a [`Trainer`](crate::Trainer) reports while it fits: a [`Callback`] gets one event per
//! step, epoch, evaluation and checkpoint. Every method does nothing by default, so a
//! listener implements only what it shows.

use std::path::PathBuf;

use crate::evaluate::Evaluation;

/// An epoch is about to start (or, resumed, to continue).
#[derive(Debug, Clone)]
pub struct EpochStart {
    /// The epoch, from 0.
    pub epoch: u64,
    /// Epochs in the run.
    pub epochs: u64,
    /// Samples in the training set.
    pub samples: u64,
    /// Samples of this epoch already trained on (more than 0 when resumed mid-epoch).
    pub seen: u64,
}

/// A training step finished: the optimizer has updated the parameters.
#[derive(Debug, Clone)]
pub struct StepEnd {
    /// Steps taken over the whole run, this one included.
    pub step: u64,
    /// The epoch, from 0.
    pub epoch: u64,
    /// The batch within the epoch, from 0.
    pub batch: usize,
    /// The whole batch's mean loss (over every process).
    pub loss: f32,
    /// The learning rate this step used.
    pub lr: f32,
    /// Samples in the whole batch.
    pub samples: u64,
    /// Samples of the epoch trained on so far.
    pub epoch_seen: u64,
    /// Mean loss per sample over the epoch so far.
    pub epoch_loss: f64,
    /// Fraction of the epoch's samples so far that were classified right (before their
    /// step's update).
    pub epoch_accuracy: f64,
}

/// An epoch finished, was evaluated, and its checkpoints are on disk (rank 0 only).
#[derive(Debug, Clone)]
pub struct EpochEnd {
    /// The epoch, from 0.
    pub epoch: u64,
    /// Epochs in the run.
    pub epochs: u64,
    /// Steps taken over the whole run.
    pub step: u64,
    /// Mean training loss per sample over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (a fraction).
    pub train_accuracy: f64,
    /// The test set's evaluation after the epoch.
    pub test: Evaluation,
    /// The test set's evaluation of the averaged weights, with an EMA
    /// ([`Trainer::with_ema`](crate::Trainer::with_ema)).
    pub ema_test: Option<Evaluation>,
    /// The best test accuracy so far, this epoch's included.
    pub best_accuracy: f64,
    /// The learning rate after the epoch's last step.
    pub lr: f32,
    /// Seconds the epoch's steps took (evaluation excluded).
    pub seconds: f64,
    /// Training samples per second over the epoch.
    pub images_per_sec: f64,
    /// Processes in the job.
    pub processes: usize,
    /// Share of the epoch's time spent in collectives (0 on one process).
    pub communication_share: f64,
}

/// Which file a checkpoint event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// `train_state.safetensors`: everything a resumed run needs.
    State,
    /// `last.safetensors`: the latest weights (a PyTorch-style state dict).
    Last,
    /// `best.safetensors`: the weights with the best test accuracy so far.
    Best,
    /// `ema.safetensors`: the exponential moving average of the weights.
    Ema,
}

/// A checkpoint file was written whole (atomically).
#[derive(Debug, Clone)]
pub struct CheckpointSaved {
    /// What the file holds.
    pub kind: CheckpointKind,
    /// Where it is.
    pub path: PathBuf,
    /// Steps taken when it was saved.
    pub step: u64,
}

/// A listener of a [`Trainer`](crate::Trainer)'s fit. Events arrive on the thread that
/// calls `fit`, in order; rank 0 of a data-parallel job alone evaluates and saves, so only
/// its listeners get [`on_evaluation`](Self::on_evaluation),
/// [`on_epoch_end`](Self::on_epoch_end) and [`on_checkpoint`](Self::on_checkpoint).
///
/// A listener that cannot do its work (a plot that cannot be written) reports it itself:
/// training and checkpointing go on.
pub trait Callback {
    /// An epoch starts.
    fn on_epoch_start(&mut self, _event: &EpochStart) {}
    /// A step finished.
    fn on_step_end(&mut self, _event: &StepEnd) {}
    /// The test set was evaluated after an epoch (before its checkpoints are saved).
    fn on_evaluation(&mut self, _epoch: u64, _evaluation: &crate::evaluate::Evaluation) {}
    /// A checkpoint was saved.
    fn on_checkpoint(&mut self, _event: &CheckpointSaved) {}
    /// An epoch finished and its checkpoints are saved.
    fn on_epoch_end(&mut self, _event: &EpochEnd) {}
}
