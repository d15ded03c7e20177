//! [`Trainer::fit`]: epochs of steps over a data loader, an evaluation after each, the
//! checkpoints and the training state on disk, stopping on request, and the events.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ventral_nn::data::{DataLoader, Dataset};
use ventral_nn::{Mode, Tensor, checkpoint, state_dict};

use crate::callback::{Callback, CheckpointKind, CheckpointSaved, EpochEnd, EpochStart, StepEnd};
use crate::ema::EMA_FILE;
use crate::error::{Result, TrainError};
use crate::run_dir::remove_stale_temps;
use crate::state::STATE_FILE;
use crate::trainer::{StepData, Totals, Trainer};

/// How [`Trainer::fit`] runs.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// Epochs of the whole run (a resumed run continues up to this many).
    pub epochs: u64,
    /// Where rank 0 writes `train_state.safetensors`, `last.safetensors` and
    /// `best.safetensors`; `None`: nowhere (nothing can then be resumed).
    pub out: Option<PathBuf>,
    /// Also save the training state every this many steps (it is always saved when the run
    /// starts, after every epoch and when stopped).
    pub save_every: Option<u64>,
    /// The run's seed, recorded in the training state.
    pub seed: u64,
}

impl FitOptions {
    /// `epochs` epochs, writing no files.
    pub fn for_epochs(epochs: u64) -> Self {
        Self {
            epochs,
            ..Self::default()
        }
    }
}

/// How a fit ended.
#[derive(Debug, Clone, Copy)]
pub struct FitEnd {
    /// Whether it stopped on request before its last epoch (the state is saved).
    pub stopped: bool,
    /// Optimizer steps taken over the run.
    pub step: u64,
    /// Best test accuracy (`-inf` if no epoch finished).
    pub best_accuracy: f64,
    /// Whether early stopping ended the run before its last epoch (its checkpoints are
    /// saved; see [`Trainer::with_early_stopping`]).
    pub early_stopped: bool,
    /// Seconds this call took.
    pub seconds: f64,
}

/// The files of a run directory, on rank 0 of a run that writes them.
struct Files {
    state: PathBuf,
    last: PathBuf,
    best: PathBuf,
    ema: PathBuf,
}

impl Trainer {
    /// Trains for `options.epochs` epochs over `train` (from where
    /// [`restore`](Self::restore) left the run, if it was called), evaluating on `test` after
    /// every epoch, and reports to `callbacks`.
    ///
    /// With `options.out`, rank 0 first removes the temporary files of killed writes there
    /// and saves the training state before the first step, then again every
    /// `options.save_every` steps, after every epoch (with `last.safetensors`, and
    /// `best.safetensors` when the test accuracy improved) and when stopped, always before
    /// the callbacks hear of the epoch: a run killed at any moment can be resumed.
    ///
    /// With [`with_accumulate`](Self::with_accumulate) each optimizer step takes a group of
    /// batches; with [`with_ema`](Self::with_ema) the averaged weights are evaluated after
    /// every epoch too and saved as [`EMA_FILE`]; with
    /// [`with_early_stopping`](Self::with_early_stopping) the run ends after the epoch whose
    /// evaluation exhausts the patience ([`FitEnd::early_stopped`]).
    ///
    /// On every process of a data-parallel job, each trains on its shard of `train` (see
    /// [`DataLoader::shard`]); rank 0 alone evaluates and writes.
    ///
    /// # Errors
    /// A step's failure ([`TrainError::Step`], [`TrainError::NonFiniteLoss`] naming the
    /// last good weights), or a checkpoint that cannot be written.
    pub fn fit<D: Dataset + Send + Sync + 'static, T: Dataset + Send + Sync + 'static>(
        &mut self,
        train: &DataLoader<D>,
        test: &DataLoader<T>,
        options: &FitOptions,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<FitEnd> {
        let cluster = Rc::clone(&self.cluster);
        let leader = cluster.is_leader();
        let run_start = Instant::now();
        self.check_settings()?;
        self.sync_model()?;
        let accumulate = self.accumulate;
        let num_batches = train.num_batches();
        self.total_steps = num_batches.div_ceil(accumulate) as u64 * options.epochs;
        let files = options.out.as_ref().filter(|_| leader).map(|out| Files {
            state: out.join(STATE_FILE),
            last: out.join("last.safetensors"),
            best: out.join("best.safetensors"),
            ema: out.join(EMA_FILE),
        });
        if let Some(out) = options.out.as_ref().filter(|_| leader) {
            remove_stale_temps(out)?;
        }
        let train_count = train.dataset().len() as u64;
        let mut resume_at = self.resume_at.take();
        let first_epoch = resume_at.as_ref().map_or(0, |s| s.epoch);
        self.model.set_mode(Mode::Train);
        let mut tell = |f: &mut dyn FnMut(&mut dyn Callback)| {
            for c in callbacks.iter_mut() {
                f(&mut **c);
            }
        };
        let end = |trainer: &Trainer, stopped, early_stopped| FitEnd {
            stopped,
            step: trainer.step,
            best_accuracy: trainer.best,
            early_stopped,
            seconds: run_start.elapsed().as_secs_f64(),
        };
        if self.early_stop.as_ref().is_some_and(|e| e.should_stop()) {
            // A run that early stopping ended, resumed: nothing more to train.
            return Ok(end(self, false, true));
        }
        if let (Some(f), None) = (&files, &resume_at) {
            // The first checkpoint opportunity: before any step.
            let state = self.state(options.seed, (0, 0, train.order(0)), Totals::default());
            state.save(&f.state)?;
            let event = self.saved(CheckpointKind::State, &f.state);
            tell(&mut |c| c.on_checkpoint(&event));
        }

        for epoch in first_epoch..options.epochs {
            let (mut batches, mut totals) = match resume_at.take() {
                Some(s) => {
                    let totals = Totals {
                        loss_sum: s.epoch_loss_sum,
                        correct: s.epoch_correct,
                        seen: s.epoch_seen,
                    };
                    (train.resume(epoch, s.order, s.next_batch)?, totals)
                }
                None => (train.epoch(epoch), Totals::default()),
            };
            let start_event = EpochStart {
                epoch,
                epochs: options.epochs,
                samples: train_count,
                seen: totals.seen,
            };
            tell(&mut |c| c.on_epoch_start(&start_event));
            let start = Instant::now();
            let seen_before = totals.seen;
            let comm_before = cluster.comm_seconds();
            // The micro-batches of the optimizer step being gathered (one without
            // accumulation); a group ends at a multiple of `accumulate` or the epoch's end.
            let mut group: Vec<(Option<Tensor>, Vec<usize>, usize)> = Vec::new();
            while let Some(batch) = batches.next() {
                let n = batch.labels.len();
                let x = if n == 0 {
                    None
                } else {
                    Some(
                        Tensor::from_vec(batch.inputs, batch.shape)
                            .map_err(ventral_nn::Error::from)?,
                    )
                };
                let index = batch.batch;
                group.push((x, batch.labels, index));
                if (index + 1) % accumulate != 0 && index + 1 < num_batches {
                    continue;
                }
                let micro: Vec<StepData<'_>> = group
                    .iter()
                    .map(|(x, labels, b)| StepData {
                        inputs: x.as_ref(),
                        labels,
                        whole: train.batch_len(*b),
                        position: Some((epoch, *b)),
                    })
                    .collect();
                let result = self.step_accumulated(&micro);
                drop(micro);
                group.clear();
                let out = match result {
                    Err(TrainError::NonFiniteLoss {
                        value,
                        step,
                        epoch,
                        batch,
                        ..
                    }) => {
                        let kept = files
                            .as_ref()
                            .map(|f| f.last.clone())
                            .filter(|p| p.exists());
                        return Err(TrainError::NonFiniteLoss {
                            value,
                            step,
                            epoch,
                            batch,
                            kept,
                        });
                    }
                    other => other?,
                };
                totals.loss_sum += out.loss_sum;
                totals.correct += out.correct;
                totals.seen += out.samples;
                let seen = totals.seen.max(1) as f64;
                let event = StepEnd {
                    step: self.step,
                    epoch,
                    batch: index,
                    loss: out.loss,
                    lr: out.lr,
                    samples: out.samples,
                    epoch_seen: totals.seen,
                    epoch_loss: totals.loss_sum / seen,
                    epoch_accuracy: totals.correct as f64 / seen,
                };
                tell(&mut |c| c.on_step_end(&event));
                let position = || (epoch, batches.next_batch(), batches.order().to_vec());
                if let (Some(f), Some(every)) = (&files, options.save_every)
                    && self.step.is_multiple_of(every)
                {
                    self.state(options.seed, position(), totals)
                        .save(&f.state)?;
                    let event = self.saved(CheckpointKind::State, &f.state);
                    tell(&mut |c| c.on_checkpoint(&event));
                }
                if cluster.any(self.stop.load(Ordering::SeqCst)) {
                    if let Some(f) = &files {
                        self.save_weights(&f.last)?;
                        let event = self.saved(CheckpointKind::Last, &f.last);
                        tell(&mut |c| c.on_checkpoint(&event));
                        self.state(options.seed, position(), totals)
                            .save(&f.state)?;
                        let event = self.saved(CheckpointKind::State, &f.state);
                        tell(&mut |c| c.on_checkpoint(&event));
                    }
                    return Ok(end(self, true, false));
                }
            }
            drop(batches);
            let seconds = start.elapsed().as_secs_f64();
            let comm_share = (cluster.comm_seconds() - comm_before) / seconds;
            let more = epoch + 1 < options.epochs;
            if !leader {
                // Rank 0 evaluates and saves; the others go on to the next epoch, whose
                // first collective waits for it.
                if self.early_stop.is_some() && cluster.any(false) {
                    return Ok(end(self, false, more));
                }
                if cluster.any(self.stop.load(Ordering::SeqCst)) && more {
                    return Ok(end(self, true, false));
                }
                continue;
            }
            let eval = self.evaluate(test)?;
            tell(&mut |c| c.on_evaluation(epoch, &eval));
            let improved = eval.accuracy > self.best;
            if improved {
                self.best = eval.accuracy;
            }
            let ema_test = self.evaluate_ema(test, files.as_ref().map(|f| f.ema.as_path()))?;
            if let Some(early) = self.early_stop.as_mut() {
                early.observe(&eval);
            }
            if let Some(f) = &files {
                self.save_weights(&f.last)?;
                let event = self.saved(CheckpointKind::Last, &f.last);
                tell(&mut |c| c.on_checkpoint(&event));
                if ema_test.is_some() {
                    let event = self.saved(CheckpointKind::Ema, &f.ema);
                    tell(&mut |c| c.on_checkpoint(&event));
                }
                if improved {
                    self.save_weights(&f.best)?;
                    let event = self.saved(CheckpointKind::Best, &f.best);
                    tell(&mut |c| c.on_checkpoint(&event));
                }
                let next = (epoch + 1, 0, train.order(epoch + 1));
                self.state(options.seed, next, Totals::default())
                    .save(&f.state)?;
                let event = self.saved(CheckpointKind::State, &f.state);
                tell(&mut |c| c.on_checkpoint(&event));
            }
            let seen = totals.seen.max(1) as f64;
            let event = EpochEnd {
                epoch,
                epochs: options.epochs,
                step: self.step,
                train_loss: totals.loss_sum / seen,
                train_accuracy: totals.correct as f64 / seen,
                test: eval,
                ema_test,
                best_accuracy: self.best,
                lr: self.optimizer.learning_rate(),
                seconds,
                images_per_sec: (totals.seen - seen_before) as f64 / seconds,
                processes: cluster.size(),
                communication_share: comm_share,
            };
            tell(&mut |c| c.on_epoch_end(&event));
            if let Some(early) = &self.early_stop
                && cluster.any(early.should_stop())
            {
                return Ok(end(self, false, more));
            }
            if cluster.any(self.stop.load(Ordering::SeqCst)) && more {
                return Ok(end(self, true, false));
            }
        }
        Ok(end(self, false, false))
    }

    /// With an EMA: its evaluation on `test`, its weights saved to `save` (atomically) when
    /// given; the raw weights are back in place afterwards, bit for bit.
    fn evaluate_ema<T: Dataset + Send + Sync + 'static>(
        &mut self,
        test: &DataLoader<T>,
        save: Option<&Path>,
    ) -> Result<Option<crate::evaluate::Evaluation>> {
        let Some(mut ema) = self.ema.take() else {
            return Ok(None);
        };
        let result = ema.swap(self.model.as_mut()).and_then(|()| {
            let eval = self.evaluate(test);
            let saved = match save {
                Some(path) => self.save_weights(path),
                None => Ok(()),
            };
            eval.and_then(|e| saved.map(|()| e))
        });
        let back = ema.swap(self.model.as_mut());
        self.ema = Some(ema);
        back?;
        result.map(Some)
    }

    fn save_weights(&mut self, path: &Path) -> Result<()> {
        checkpoint::save(path, &state_dict(self.model.as_mut()))?;
        Ok(())
    }

    fn saved(&self, kind: CheckpointKind, path: &Path) -> CheckpointSaved {
        CheckpointSaved {
            kind,
            path: path.to_path_buf(),
            step: self.step,
        }
    }
}
