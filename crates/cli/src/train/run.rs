//! The training loop.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;
use ventral_autograd::AnomalyMode;
use ventral_nn::checkpoint;
use ventral_nn::data::{Batches, DataLoader, Dataset, InMemoryDataset, Prefetch};
use ventral_nn::{
    load_state_dict, load_training_state, state_dict, training_state, Mode, Module, Optimizer,
    Tensor,
};

use super::args::TrainArgs;
use super::evaluate::{argmax_rows, evaluate, EVAL_BATCH};
use super::history::{trim_metrics, History};
use super::interrupt::Interrupt;
use super::resume;
use super::schedule::learning_rate;
use super::setup::{
    build_model, check_model_name, load_datasets, loss_of, optimizer, prepare_out_dir,
};
use super::state::{TrainState, STATE_FILE};
use crate::distributed::Cluster;
use crate::errors::Interrupted;
use crate::report::metrics::MetricsWriter;
use crate::report::progress;

fn save_weights(model: &mut dyn Module, path: &Path) -> Result<()> {
    checkpoint::save(path, &state_dict(model))
        .with_context(|| format!("could not save {}", path.display()))
}

/// `config.json`: the run's arguments (read back by `--resume`) and what inference needs to
/// preprocess inputs as training did (`ventral predict`).
#[derive(Serialize)]
struct Config<'a> {
    args: &'a TrainArgs,
    train_samples: usize,
    test_samples: usize,
    classes: usize,
    input_shape: [usize; 3],
    normalize: Normalization<'a>,
    class_names: Option<&'a [String]>,
}

/// Per-channel statistics: inputs are fed as `(x - mean) / std`.
#[derive(Serialize)]
struct Normalization<'a> {
    mean: &'a [f32],
    std: &'a [f32],
}

/// Running totals of the epoch in progress.
#[derive(Clone, Copy, Default)]
struct EpochTotals {
    loss_sum: f64,
    correct: u64,
    seen: u64,
}

/// Everything the loop mutates, so that saving the state is one call.
struct Run {
    model: Box<dyn Module>,
    opt: Box<dyn Optimizer>,
    step: u64,
    best: f64,
}

impl Run {
    fn state(
        &mut self,
        seed: u64,
        batches: (u64, usize, Vec<usize>),
        t: EpochTotals,
    ) -> TrainState {
        let (epoch, next_batch, order) = batches;
        TrainState {
            model: training_state(self.model.as_mut()),
            optimizer: self.opt.state_dict(),
            epoch,
            next_batch,
            step: self.step,
            seed,
            order,
            best_accuracy: self.best,
            epoch_loss_sum: t.loss_sum,
            epoch_correct: t.correct,
            epoch_seen: t.seen,
        }
    }
}

/// Runs `ventral train`. `given` names the flags given on the command line (for `--resume`,
/// which must not contradict the run it continues).
///
/// With `--distributed`, every process of the MPI job runs this: each trains on its share
/// of every batch, gradients are averaged before each step, and rank 0 alone prints and
/// writes files. BatchNorm's batch statistics (and running statistics) stay per process,
/// as in PyTorch's DistributedDataParallel; rank 0's running statistics are the ones saved.
///
/// # Errors
/// Bad data, model or output directory; a loss that becomes NaN or infinite; Ctrl-C
/// ([`Interrupted`], after saving); with `--distributed`, no MPI launcher or a batch that
/// does not split evenly.
pub fn run(args: TrainArgs, given: &[String]) -> Result<()> {
    let cluster = Cluster::join(args.distributed)?;
    let result = run_on(&cluster, args, given);
    cluster.finish(result)
}

fn run_on(cluster: &Cluster, args: TrainArgs, given: &[String]) -> Result<()> {
    let (args, saved) = match args.resume.clone() {
        Some(dir) => {
            let (args, state) = resume::prepare(args, given, &dir)?;
            (args, Some(state))
        }
        None => (args, None),
    };
    check_model_name(&args.model)?;
    cluster.check_batch(args.batch_size)?;
    let leader = cluster.is_leader();
    if leader {
        prepare_out_dir(&args.out)?;
    }
    let (train, test) = load_datasets(&args)?;
    let classes = train.num_classes();
    let mut model = build_model(
        &args.model,
        &args.dataset,
        train.sample_shape(),
        classes,
        args.seed,
    )?;
    let mut opt = optimizer(&args)?;
    if let Some(state) = &saved {
        load_training_state(model.as_mut(), &state.model)
            .context("the saved training state does not fit the model")?;
        opt.load_state_dict(&state.optimizer)
            .context("the saved optimizer state does not fit the optimizer")?;
    } else if let Some(init) = &args.init {
        let state = checkpoint::load(init).context("--init")?;
        load_state_dict(model.as_mut(), &state).with_context(|| {
            format!(
                "--init {} does not fit model {}",
                init.display(),
                args.model
            )
        })?;
    }
    // The same seed gives every process the same model; the broadcast makes sure of it (and
    // of a resumed state read from a shared disk).
    cluster.broadcast_module(model.as_mut())?;

    let (mean, std) = train.channel_mean_std();
    let config = Config {
        args: &args,
        train_samples: train.len(),
        test_samples: test.len(),
        classes,
        input_shape: train.sample_shape(),
        normalize: Normalization {
            mean: &mean,
            std: &std,
        },
        class_names: train.class_names(),
    };
    let metrics_path = args.out.join("metrics.jsonl");
    let (history, metrics) = if leader {
        checkpoint::write_atomically(
            &args.out.join("config.json"),
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )
        .with_context(|| format!("cannot write to {}", args.out.display()))?;
        let history = match &saved {
            Some(state) => trim_metrics(&metrics_path, state.step)?,
            None => History::default(),
        };
        let metrics = MetricsWriter::open(&metrics_path, saved.is_none())?;
        (history, Some(metrics))
    } else {
        (History::default(), None)
    };

    let mut loader = DataLoader::new(train, args.batch_size as usize)?
        .seed(args.seed)
        .normalize(mean.clone(), std.clone())?
        .shard(cluster.rank(), cluster.size())?
        .prefetch(Prefetch::Background);
    if !args.no_shuffle {
        loader = loader.shuffle();
    }
    let test_loader = DataLoader::new(test, EVAL_BATCH)?
        .normalize(mean, std)?
        .prefetch(Prefetch::Background);
    let run = Run {
        model,
        opt,
        step: saved.as_ref().map_or(0, |s| s.step),
        best: saved
            .as_ref()
            .map_or(f64::NEG_INFINITY, |s| s.best_accuracy),
    };
    train_loop(
        cluster,
        &args,
        run,
        &loader,
        &test_loader,
        classes,
        saved,
        history,
        metrics,
    )
}

#[allow(clippy::too_many_arguments)]
fn train_loop(
    cluster: &Cluster,
    args: &TrainArgs,
    mut run: Run,
    loader: &DataLoader<InMemoryDataset>,
    test_loader: &DataLoader<InMemoryDataset>,
    classes: usize,
    saved: Option<TrainState>,
    mut history: History,
    mut metrics: Option<MetricsWriter>,
) -> Result<()> {
    let leader = cluster.is_leader();
    let out = &args.out;
    let state_path = out.join(STATE_FILE);
    let last_path = out.join("last.safetensors");
    let steps_per_epoch = loader.num_batches() as u64;
    let total_steps = steps_per_epoch * u64::from(args.epochs);
    let train_count = loader.dataset().len() as u64;
    let run_start = Instant::now();
    let mut interrupt = Interrupt::install(args.stop_after_steps)?;
    // Anomaly mode: the first op that produces NaN or inf fails, naming the op and layer.
    let _anomaly = args.anomaly.then(AnomalyMode::enable);
    let first_epoch = saved.as_ref().map_or(0, |s| s.epoch);
    let mut resume_at = saved;
    run.model.set_mode(Mode::Train);

    for epoch in first_epoch..u64::from(args.epochs) {
        let (mut batches, mut totals): (Batches, EpochTotals) = match resume_at.take() {
            Some(s) => {
                let totals = EpochTotals {
                    loss_sum: s.epoch_loss_sum,
                    correct: s.epoch_correct,
                    seen: s.epoch_seen,
                };
                (loader.resume(epoch, s.order, s.next_batch)?, totals)
            }
            None => (loader.epoch(epoch), EpochTotals::default()),
        };
        let bar = progress::bar(
            train_count,
            &format!("epoch {}/{}", epoch + 1, args.epochs),
            args.quiet || !leader,
        );
        bar.set_position(totals.seen);
        let start = Instant::now();
        let seen_before = totals.seen;
        let comm_before = cluster.comm_seconds();
        while let Some(batch) = batches.next() {
            cluster.maybe_fail_at(run.step + 1);
            let lr = learning_rate(args.schedule, args.lr, run.step, total_steps);
            run.opt.set_learning_rate(lr);
            // This process's share of the batch, and the whole batch over all processes.
            let (n, whole) = (batch.labels.len(), loader.batch_len(batch.batch));
            let at = || {
                format!(
                    "at step {} (epoch {}, batch {})",
                    run.step + 1,
                    epoch + 1,
                    batch.batch + 1
                )
            };
            // A process whose share is empty (a last batch shorter than the process count)
            // computes nothing and contributes zero gradients.
            let local = if n == 0 {
                None
            } else {
                let x = Tensor::from_vec(batch.inputs, batch.shape)?;
                let logits = run.model.forward(&x).with_context(at)?;
                let loss = loss_of(args.loss, &logits, &batch.labels, classes)?;
                let value = loss.item()?;
                let correct = argmax_rows(&logits.to_vec(), classes)
                    .iter()
                    .zip(&batch.labels)
                    .filter(|(p, l)| p == l)
                    .count();
                Some((loss, value, correct))
            };
            let (value, correct) = local.as_ref().map_or((0.0, 0), |l| (l.1, l.2));
            // [loss × samples, correct, samples] over the whole batch.
            let mut sums = [value as f64 * n as f64, correct as f64, n as f64];
            cluster.sum(&mut sums);
            let value = if n == whole {
                value
            } else {
                (sums[0] / sums[2]) as f32
            };
            if !value.is_finite() {
                bar.abandon();
                let kept = if last_path.exists() {
                    format!("the last good checkpoint, {}, is kept", last_path.display())
                } else {
                    "no checkpoint had been saved yet".to_string()
                };
                bail!(
                    "the loss became {value} at step {} (epoch {}, batch {}); {kept}. Try a smaller --lr.",
                    run.step + 1,
                    epoch + 1,
                    batch.batch + 1
                );
            }
            let loss = local.as_ref().map(|l| &l.0);
            let weight = n as f32 / whole as f32;
            let grads = cluster
                .backward(run.model.as_mut(), loss, weight)
                .with_context(at)?;
            run.opt.step(run.model.as_mut(), &grads)?;
            run.step += 1;
            interrupt.step_done();
            if n == whole {
                totals.loss_sum += value as f64 * n as f64;
            } else {
                totals.loss_sum += sums[0];
            }
            totals.correct += sums[1] as u64;
            totals.seen += whole as u64;
            bar.inc(whole as u64);
            bar.set_message(format!(
                "loss {:.4}  acc {:.2}%",
                totals.loss_sum / totals.seen as f64,
                100.0 * totals.correct as f64 / totals.seen as f64
            ));
            if let Some(metrics) = metrics.as_mut().filter(|_| run.step.is_multiple_of(100)) {
                metrics.write(&json!({"kind": "step", "step": run.step, "epoch": epoch + 1, "loss": value, "lr": lr}))?;
            }
            if cluster.any(interrupt.requested()) {
                bar.abandon();
                if leader {
                    let position = (epoch, batches.next_batch(), batches.order().to_vec());
                    let state = run.state(args.seed, position, totals);
                    save_weights(run.model.as_mut(), &last_path)?;
                    state.save(&state_path)?;
                }
                return Err(Interrupted {
                    dir: out.clone(),
                    step: run.step,
                }
                .into());
            }
        }
        drop(batches);
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let comm_share = (cluster.comm_seconds() - comm_before) / seconds;
        if !leader {
            // Rank 0 evaluates and saves; the others go on to the next epoch, whose first
            // collective waits for it.
            if cluster.any(interrupt.requested()) && epoch + 1 < u64::from(args.epochs) {
                return Err(Interrupted {
                    dir: out.clone(),
                    step: run.step,
                }
                .into());
            }
            continue;
        }
        let eval = evaluate(run.model.as_mut(), test_loader, args.loss, classes)?;
        let seen = totals.seen.max(1) as f64;
        let (train_loss, train_acc) = (totals.loss_sum / seen, totals.correct as f64 / seen);
        let images_per_sec = (totals.seen - seen_before) as f64 / seconds;
        let mut record = json!({
            "kind": "epoch", "epoch": epoch + 1, "step": run.step,
            "train_loss": train_loss, "train_accuracy": train_acc,
            "test_loss": eval.loss, "test_accuracy": eval.accuracy,
            "lr": run.opt.learning_rate(), "seconds": seconds, "images_per_sec": images_per_sec,
        });
        let comm = if cluster.size() > 1 {
            record["processes"] = json!(cluster.size());
            record["communication_share"] = json!(comm_share);
            format!(", {:.0} % communication", 100.0 * comm_share)
        } else {
            String::new()
        };
        if let Some(metrics) = metrics.as_mut() {
            metrics.write(&record)?;
        }
        println!(
            "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  |  test loss {:.4} acc {:6.2}%  |  {:.0} img/s, {:.1} s{comm}",
            epoch + 1,
            args.epochs,
            train_loss,
            100.0 * train_acc,
            eval.loss,
            100.0 * eval.accuracy,
            images_per_sec,
            seconds
        );
        save_weights(run.model.as_mut(), &last_path)?;
        if eval.accuracy > run.best {
            run.best = eval.accuracy;
            save_weights(run.model.as_mut(), &out.join("best.safetensors"))?;
        }
        history.push(
            epoch + 1,
            (train_loss, train_acc),
            (eval.loss, eval.accuracy),
        );
        history.plot(out)?;
        let next = (epoch + 1, 0, loader.order(epoch + 1));
        run.state(args.seed, next, EpochTotals::default())
            .save(&state_path)?;
        if cluster.any(interrupt.requested()) && epoch + 1 < u64::from(args.epochs) {
            return Err(Interrupted {
                dir: out.clone(),
                step: run.step,
            }
            .into());
        }
    }
    if !leader {
        return Ok(());
    }
    println!(
        "best test accuracy {:.2}% in {:.1} s; wrote {}",
        100.0 * run.best,
        run_start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}
