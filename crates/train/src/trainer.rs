//! The [`Trainer`]: one training step (forward, loss, backward, gradient averaging over the
//! [`Cluster`], optimizer, learning-rate schedule), evaluation, and resuming a saved state.
//! The epoch loop that drives it is in `fit.rs`.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ventral_autograd::profile::{self, Pass};
use ventral_nn::data::{DataLoader, Dataset};
use ventral_nn::{Mode, Module, Optimizer, Tensor, load_training_state, no_grad, training_state};

use crate::accumulate::add_gradients;
use crate::cluster::Cluster;
use crate::early_stop::{EarlyStopping, Monitor};
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::evaluate::{Evaluation, argmax_rows, evaluate};
use crate::loss::Loss;
use crate::schedule::{ScheduleKind, learning_rate};
use crate::state::TrainState;
use ventral_nn::optim::clip_grad_norm;

/// The name of the optimizer step's span in [`ventral_autograd::profile`].
pub const OPTIMIZER_SPAN: &str = "optimizer";

/// One step's data: this process's share of a batch.
#[derive(Debug, Clone, Copy)]
pub struct StepData<'a> {
    /// `[n, C, H, W]` inputs; `None` when this process's share is empty (a last batch
    /// shorter than the number of processes): it then contributes zero gradients.
    pub inputs: Option<&'a Tensor>,
    /// The `n` labels.
    pub labels: &'a [usize],
    /// Samples in the whole batch over every process (`n` on one process).
    pub whole: usize,
    /// The epoch (from 0) and batch (from 0) the step belongs to, for error messages.
    pub position: Option<(u64, usize)>,
}

impl<'a> StepData<'a> {
    /// A whole batch on one process.
    pub fn new(inputs: &'a Tensor, labels: &'a [usize]) -> Self {
        Self {
            inputs: Some(inputs),
            labels,
            whole: labels.len(),
            position: None,
        }
    }
}

/// What one step did, summed over every process.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    /// The whole batch's mean loss.
    pub loss: f32,
    /// Σ loss over the whole batch's samples.
    pub loss_sum: f64,
    /// Samples of the whole batch classified right (before the update).
    pub correct: u64,
    /// Samples in the whole batch.
    pub samples: u64,
    /// The learning rate the step used.
    pub lr: f32,
}

/// Trains a classifier: owns the model, the optimizer, the loss, the learning-rate
/// schedule, the processes of a data-parallel job and where the run stands.
///
/// [`step`](Self::step) takes one step; [`fit`](Self::fit) runs epochs over a
/// [`DataLoader`], evaluates after each, saves checkpoints and the training state, stops on
/// request ([`stop_handle`](Self::stop_handle)) and reports to [`Callback`](crate::Callback)s.
pub struct Trainer {
    pub(crate) model: Box<dyn Module>,
    pub(crate) optimizer: Box<dyn Optimizer>,
    pub(crate) classes: usize,
    pub(crate) loss: Loss,
    pub(crate) schedule: ScheduleKind,
    /// The bound on the gradients' joint L2 norm, if they are clipped.
    pub(crate) clip_grad_norm: Option<f32>,
    /// Micro-batches per optimizer step in [`fit`](Self::fit) (1: no accumulation).
    pub(crate) accumulate: usize,
    /// Label smoothing of the cross-entropy training loss (0: none).
    pub(crate) label_smoothing: f32,
    /// The exponential moving average of the weights, if kept.
    pub(crate) ema: Option<Ema>,
    /// When to stop early, and how the run stands against it.
    pub(crate) early_stop: Option<EarlyStopping>,
    pub(crate) base_lr: f32,
    /// Steps of the whole run, over which the schedule is laid.
    pub(crate) total_steps: u64,
    pub(crate) cluster: Rc<Cluster>,
    /// Optimizer steps taken over the run.
    pub(crate) step: u64,
    /// Best test accuracy so far.
    pub(crate) best: f64,
    pub(crate) stop: Arc<AtomicBool>,
    /// The saved position [`fit`](Self::fit) continues from.
    pub(crate) resume_at: Option<TrainState>,
}

impl Trainer {
    /// A trainer of `model` (giving `[N, classes]` logits) with `optimizer`, on this process
    /// alone, minimising cross-entropy at the optimizer's learning rate.
    pub fn new(model: Box<dyn Module>, optimizer: Box<dyn Optimizer>, classes: usize) -> Self {
        let base_lr = optimizer.learning_rate();
        Self {
            model,
            optimizer,
            classes,
            loss: Loss::CrossEntropy,
            schedule: ScheduleKind::None,
            clip_grad_norm: None,
            accumulate: 1,
            label_smoothing: 0.0,
            ema: None,
            early_stop: None,
            base_lr,
            total_steps: 0,
            cluster: Rc::new(Cluster::single()),
            step: 0,
            best: f64::NEG_INFINITY,
            stop: Arc::new(AtomicBool::new(false)),
            resume_at: None,
        }
    }

    /// Minimises `loss` instead.
    pub fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Moves the learning rate by `schedule` from the optimizer's rate over the run
    /// ([`fit`](Self::fit) sets the run's length).
    pub fn with_schedule(mut self, schedule: ScheduleKind) -> Self {
        self.schedule = schedule;
        self
    }

    /// Clips the gradients of every step to a joint L2 norm of at most `max_norm`
    /// ([`ventral_nn::optim::clip_grad_norm`], as PyTorch's `clip_grad_norm_`), after they
    /// are averaged over the processes and before the optimizer reads them. A `max_norm`
    /// that is not a finite number above 0 makes every step an error.
    pub fn with_clip_grad_norm(mut self, max_norm: f32) -> Self {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// Accumulates the gradients of `n` consecutive batches before each optimizer step in
    /// [`fit`](Self::fit) (PyTorch Lightning's `accumulate_grad_batches`): with batches of
    /// `B`, each step equals one of a batch of `n·B` up to f32 rounding (see
    /// [`step_accumulated`](Self::step_accumulated)). Groups are counted from each epoch's
    /// first batch; an epoch whose batch count is not a multiple of `n` ends with a shorter
    /// group, stepped as the mean over its own samples (as the last, shorter batch of a
    /// loader of `n·B` would be). The step counter, the learning-rate schedule (laid over
    /// ⌈batches / n⌉ steps per epoch), `save_every`, [`StepEnd`](crate::StepEnd) events and
    /// stop requests all count optimizer steps. `n` = 0 makes every step an error.
    pub fn with_accumulate(mut self, n: usize) -> Self {
        self.accumulate = n;
        self
    }

    /// Trains with label smoothing `epsilon` on the cross-entropy loss (PyTorch's
    /// `CrossEntropyLoss(label_smoothing=ε)`: the target is `(1 − ε)·onehot + ε/C`).
    /// Evaluation still reports plain cross-entropy, as timm validates. An `epsilon` outside
    /// [0, 1), or any `epsilon` > 0 with a loss other than [`Loss::CrossEntropy`], makes every
    /// step an error ([`TrainError::Config`]).
    pub fn with_label_smoothing(mut self, epsilon: f32) -> Self {
        self.label_smoothing = epsilon;
        self
    }

    /// Keeps an exponential moving average of the weights with weight `decay` on the past
    /// (timm's `ModelEma`: `ema = decay·ema + (1 − decay)·param` after every optimizer
    /// step, buffers copied; see the `ema` module). It starts at the weights the first step
    /// begins from; [`fit`](Self::fit) evaluates it after every epoch
    /// ([`EpochEnd::ema_test`](crate::EpochEnd::ema_test)), saves it as
    /// [`EMA_FILE`](crate::EMA_FILE) and keeps it in the training state. A `decay` outside
    /// [0, 1] makes every step an error.
    pub fn with_ema(mut self, decay: f32) -> Self {
        self.ema = Some(Ema::new(decay));
        self
    }

    /// Stops [`fit`](Self::fit) once the test `monitor` has not improved for `patience`
    /// epochs in a row ([`EarlyStopping`], as PyTorch Lightning's). A `patience` of 0 makes
    /// every step an error.
    pub fn with_early_stopping(mut self, patience: u64, monitor: Monitor) -> Self {
        self.early_stop = Some(EarlyStopping::new(patience, monitor));
        self
    }

    /// The averaged weights under the model's names (parameters and buffers), if an EMA is
    /// kept ([`with_ema`](Self::with_ema)); before the first step, the model's own.
    pub fn ema_weights(&mut self) -> Option<ventral_nn::checkpoint::StateDict> {
        let model = self.model.as_mut();
        self.ema.as_mut().map(|e| e.state(model))
    }

    /// Early stopping's settings and where the run stands against them, if it is on.
    pub fn early_stopping(&self) -> Option<&EarlyStopping> {
        self.early_stop.as_ref()
    }

    /// Trains on every process of `cluster`: each step averages the gradients of all
    /// processes' shares of the batch.
    pub fn with_cluster(mut self, cluster: Rc<Cluster>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Lays the schedule over a run of `total` steps (for [`step`](Self::step) used alone;
    /// [`fit`](Self::fit) sets it from its epochs).
    pub fn set_total_steps(&mut self, total: u64) {
        self.total_steps = total;
    }

    /// The flag that stops [`fit`](Self::fit): once set (from a Ctrl-C handler, another
    /// thread, or a callback), the run finishes its step, saves and returns.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The model.
    pub fn model(&mut self) -> &mut dyn Module {
        self.model.as_mut()
    }

    /// The processes the trainer runs on.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Optimizer steps taken over the run.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Best test accuracy so far (`-inf` before the first evaluation).
    pub fn best_accuracy(&self) -> f64 {
        self.best
    }

    /// Gives every process rank 0's model (see [`Cluster::broadcast_module`]); nothing on
    /// one process.
    ///
    /// # Errors
    /// Those of [`Cluster::broadcast_module`].
    pub fn sync_model(&mut self) -> Result<()> {
        self.cluster.broadcast_module(self.model.as_mut())
    }

    /// One training step on `data`: sets the scheduled learning rate, runs the model and
    /// the loss, averages the gradients of the whole batch over every process, and updates
    /// the parameters.
    ///
    /// # Errors
    /// [`TrainError::Step`] if the model, loss or backward pass fails;
    /// [`TrainError::NonFiniteLoss`] if the loss is NaN or infinite (the parameters are
    /// then left as they were).
    pub fn step(&mut self, data: StepData<'_>) -> Result<StepOutput> {
        self.step_accumulated(&[data])
    }

    /// One optimizer step over several micro-batches (gradient accumulation): each
    /// micro-batch's forward and backward run in turn, its mean loss weighted by its share
    /// of the group's samples (`whole` / Σ `whole`; 1/N for N equal micro-batches, as
    /// PyTorch users scale each micro-batch's loss), the gradients are summed, and then
    /// clipped and applied once. The update is that of one step on the concatenated
    /// batch, up to f32 rounding (BatchNorm excepted: its batch statistics are those of each
    /// micro-batch). One micro-batch is exactly [`step`](Self::step).
    ///
    /// # Errors
    /// As [`step`](Self::step); a NaN or infinite loss in any micro-batch leaves the
    /// parameters as they were.
    pub fn step_accumulated(&mut self, micro: &[StepData<'_>]) -> Result<StepOutput> {
        let cluster = Rc::clone(&self.cluster);
        let number = self.step + 1;
        cluster.maybe_fail_at(number);
        self.check_settings()?;
        if let Some(ema) = self.ema.as_mut() {
            ema.start(self.model.as_mut());
        }
        let lr = learning_rate(self.schedule, self.base_lr, self.step, self.total_steps);
        self.optimizer.set_learning_rate(lr);
        let group: usize = micro.iter().map(|d| d.whole).sum();
        let mut grads = None;
        let (mut loss_sum, mut correct, mut samples, mut last) = (0.0f64, 0u64, 0u64, 0.0f32);
        let mut failed_at = (None, None);
        for data in micro {
            let (epoch, batch) = data.position.unzip();
            failed_at = (epoch, batch);
            let at = |source: ventral_nn::Error| TrainError::Step {
                step: number,
                epoch,
                batch,
                source: Box::new(source),
            };
            let n = data.labels.len();
            let local = match data.inputs.filter(|_| n > 0) {
                None => None,
                Some(x) => {
                    let logits = self.model.forward(x).map_err(at)?;
                    let loss = match self.loss.of_smoothed(
                        &logits,
                        data.labels,
                        self.classes,
                        self.label_smoothing,
                    ) {
                        Ok(l) => l,
                        Err(TrainError::Nn(e)) => return Err(at(e)),
                        Err(e) => return Err(e),
                    };
                    let value = loss.item().map_err(|e| at(e.into()))?;
                    let correct = argmax_rows(&logits.to_vec(), self.classes)
                        .iter()
                        .zip(data.labels)
                        .filter(|(p, l)| p == l)
                        .count();
                    Some((loss, value, correct))
                }
            };
            let (value, right) = local.as_ref().map_or((0.0, 0), |l| (l.1, l.2));
            // [loss × samples, correct, samples] over the whole micro-batch.
            let mut sums = [value as f64 * n as f64, right as f64, n as f64];
            cluster.sum(&mut sums);
            let value = if n == data.whole {
                value
            } else {
                (sums[0] / sums[2]) as f32
            };
            if !value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    value,
                    step: number,
                    epoch,
                    batch,
                    kept: None,
                });
            }
            // This micro-batch's share of the group (1/N for N equal ones), applied to its
            // loss; the cluster then weights each process's share of the micro-batch.
            let scaled = match &local {
                Some((loss, ..)) if data.whole != group => Some(
                    loss.mul_scalar(data.whole as f32 / group as f32)
                        .map_err(|e| at(e.into()))?,
                ),
                Some((loss, ..)) => Some(loss.clone()),
                None => None,
            };
            let weight = n as f32 / data.whole as f32;
            let g = match cluster.backward(self.model.as_mut(), scaled.as_ref(), weight) {
                Ok(g) => g,
                Err(TrainError::Nn(e)) => return Err(at(e)),
                Err(e) => return Err(e),
            };
            grads = Some(match grads {
                None => g,
                Some(sum) => add_gradients(self.model.as_mut(), sum, &g).map_err(at)?,
            });
            loss_sum += if n == data.whole {
                value as f64 * n as f64
            } else {
                sums[0]
            };
            correct += sums[1] as u64;
            samples += data.whole as u64;
            last = value;
        }
        let mut grads = grads.unwrap_or_default();
        let at = |source: ventral_nn::Error| TrainError::Step {
            step: number,
            epoch: failed_at.0,
            batch: failed_at.1,
            source: Box::new(source),
        };
        if let Some(max_norm) = self.clip_grad_norm {
            clip_grad_norm(self.model.as_mut(), &mut grads, max_norm).map_err(at)?;
        }
        // A no-op unless the profiler is on (`ventral bench train --profile`).
        profile::span(OPTIMIZER_SPAN, Pass::Other, || {
            self.optimizer.step(self.model.as_mut(), &grads)
        })?;
        self.step = number;
        if let Some(ema) = self.ema.as_mut() {
            ema.update(self.model.as_mut());
        }
        let loss = if micro.len() == 1 {
            last
        } else {
            (loss_sum / samples.max(1) as f64) as f32
        };
        Ok(StepOutput {
            loss,
            loss_sum,
            correct,
            samples,
            lr,
        })
    }

    /// Fails with [`TrainError::Config`] on a setting that no step can use.
    pub(crate) fn check_settings(&self) -> Result<()> {
        if self.accumulate == 0 {
            return Err(TrainError::Config(
                "gradient accumulation needs at least 1 micro-batch per step, got 0".into(),
            ));
        }
        let eps = self.label_smoothing;
        if !(0.0..1.0).contains(&eps) {
            return Err(TrainError::Config(format!(
                "label smoothing must be in [0, 1), got {eps}"
            )));
        }
        if eps > 0.0 && self.loss != Loss::CrossEntropy {
            return Err(TrainError::Config(format!(
                "label smoothing applies to the cross-entropy loss only, not {:?}",
                self.loss
            )));
        }
        if let Some(ema) = &self.ema {
            ema.check()?;
        }
        if let Some(early) = &self.early_stop {
            early.check()?;
        }
        Ok(())
    }

    /// Accuracy, loss and confusion matrix over `loader`, in eval mode and without a graph.
    ///
    /// # Errors
    /// If the model rejects the data.
    pub fn evaluate<D: Dataset + Send + Sync + 'static>(
        &mut self,
        loader: &DataLoader<D>,
    ) -> Result<Evaluation> {
        evaluate(self.model.as_mut(), loader, self.loss, self.classes)
    }

    /// The model's output for `x` in eval mode, without recording a graph (then back to
    /// training mode).
    ///
    /// # Errors
    /// If the model rejects `x`.
    pub fn infer(&mut self, x: &Tensor) -> Result<Tensor> {
        self.model.set_mode(Mode::Eval);
        let out = no_grad(|| self.model.forward(x));
        self.model.set_mode(Mode::Train);
        Ok(out?)
    }

    /// Where the run stands, for a training state: at batch `next_batch` of `epoch` whose
    /// order is `order`, with the epoch's running totals.
    pub(crate) fn state(
        &mut self,
        seed: u64,
        (epoch, next_batch, order): (u64, usize, Vec<usize>),
        totals: Totals,
    ) -> TrainState {
        TrainState {
            model: training_state(self.model.as_mut()),
            optimizer: self.optimizer.state_dict(),
            epoch,
            next_batch,
            step: self.step,
            seed,
            order,
            best_accuracy: self.best,
            epoch_loss_sum: totals.loss_sum,
            epoch_correct: totals.correct,
            epoch_seen: totals.seen,
            ema: self.ema.as_mut().map(|e| e.state(self.model.as_mut())),
            early_stop: self.early_stop.as_ref().map(|e| (e.best, e.wait)),
        }
    }

    /// Restores `state` (read from `path`, named in errors) so that [`fit`](Self::fit)
    /// continues exactly where it was saved, on data drawn by `loader`.
    ///
    /// Everything is checked before anything changes: the state against the model and
    /// the loader ([`TrainState::check`]), the optimizer's part against the optimizer and
    /// the model's parameters; on any mismatch the trainer is left as it was.
    ///
    /// # Errors
    /// [`TrainError::BadState`] naming the tensor that does not fit.
    pub fn restore<D: Dataset + Send + Sync + 'static>(
        &mut self,
        state: TrainState,
        path: &std::path::Path,
        loader: &DataLoader<D>,
    ) -> Result<()> {
        state.check(
            path,
            self.model.as_mut(),
            loader.dataset().len(),
            loader.num_batches(),
            loader.batch_size(),
        )?;
        let bad = |e: ventral_nn::Error, part: &str| TrainError::BadState {
            path: path.to_path_buf(),
            detail: format!("the {part} part does not fit: {e}"),
        };
        let bad_state = |detail: String| TrainError::BadState {
            path: path.to_path_buf(),
            detail,
        };
        match (&self.ema, &state.ema) {
            (Some(_), None) => {
                return Err(bad_state(
                    "it holds no EMA weights, but this run keeps an EMA".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(bad_state(
                    "it holds EMA weights, but this run keeps no EMA".into(),
                ));
            }
            (Some(_), Some(ema)) => Ema::check_state(ema, self.model.as_mut())
                .map_err(|e| bad_state(format!("the ema part does not fit the model: {e}")))?,
            (None, None) => {}
        }
        if self.early_stop.is_some() != state.early_stop.is_some() {
            return Err(bad_state(format!(
                "it was saved {} early stopping, but this run has it {}",
                if state.early_stop.is_some() {
                    "with"
                } else {
                    "without"
                },
                if self.early_stop.is_some() {
                    "on"
                } else {
                    "off"
                }
            )));
        }
        self.optimizer
            .load_state_dict(self.model.as_mut(), &state.optimizer)
            .map_err(|e| bad(e, "optimizer"))?;
        // Checked above, so this cannot fail half-way; it changes nothing if it fails.
        load_training_state(self.model.as_mut(), &state.model).map_err(|e| bad(e, "model"))?;
        if let (Some(ema), Some(saved)) = (self.ema.as_mut(), &state.ema) {
            ema.restore(saved, self.model.as_mut());
        }
        if let (Some(early), Some((best, wait))) = (self.early_stop.as_mut(), state.early_stop) {
            early.best = best;
            early.wait = wait;
        }
        self.step = state.step;
        self.best = state.best_accuracy;
        self.resume_at = Some(state);
        Ok(())
    }
}

/// Running totals of the epoch in progress.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub loss_sum: f64,
    pub correct: u64,
    pub seen: u64,
}
