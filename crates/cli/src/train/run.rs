//! The training loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use ventral_models::build;
use ventral_nn::checkpoint::{self, StateDict};
use ventral_nn::data::{self, DataLoader, Dataset, InMemoryDataset, Prefetch, Split};
use ventral_nn::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use ventral_nn::{load_state_dict, loss, state_dict, Mode, Module, Optimizer, Tensor};

use super::args::{LossKind, OptimizerKind, TrainArgs};
use super::evaluate::{argmax_rows, evaluate};
use super::schedule::learning_rate;
use crate::report::metrics::MetricsWriter;
use crate::report::plot::{line_chart, Labels, Series};
use crate::report::progress;

/// The training loss of `logits` for integer `labels`.
///
/// # Errors
/// If the shapes do not fit.
pub fn loss_of(
    kind: LossKind,
    logits: &Tensor,
    labels: &[usize],
    classes: usize,
) -> Result<Tensor> {
    Ok(match kind {
        LossKind::CrossEntropy => loss::cross_entropy(logits, labels, 0.0)?,
        LossKind::Hinge => {
            loss::multi_margin_loss(logits, labels, loss::MarginNormalization::ByClasses)?
        }
        LossKind::Mse => {
            let mut one_hot = vec![0.0f32; labels.len() * classes];
            for (i, &l) in labels.iter().enumerate() {
                one_hot[i * classes + l] = 1.0;
            }
            loss::mse_loss(logits, &Tensor::from_vec(one_hot, [labels.len(), classes])?)?
        }
    })
}

/// Where a named dataset's files are when `--data-dir` is not given: `./data/<name>` if it
/// exists (running from a checkout), else the checkout this binary was built from.
pub fn default_data_dir(name: &str) -> PathBuf {
    let local = Path::new("data").join(name);
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// Training and test sets; a dataset without a test split holds out its last 20 %.
fn load_datasets(args: &TrainArgs) -> Result<(InMemoryDataset, InMemoryDataset)> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None if args.dataset.starts_with("csv:") => PathBuf::from("."),
        None => default_data_dir(&args.dataset),
    };
    let train = data::load(&args.dataset, &dir, Split::Train)?;
    let (train, test) = match data::load(&args.dataset, &dir, Split::Test) {
        Ok(test) if !args.dataset.starts_with("csv:") => (train, test),
        _ => {
            // Hold out a fixed, seed-independent 20 % (every fifth sample) as the test set.
            let all: Vec<usize> = (0..train.len()).collect();
            let (held, kept): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&i| i % 5 == 4);
            (train.subset(&kept)?, train.subset(&held)?)
        }
    };
    let train = match args.limit_train {
        Some(n) if (n as usize) < train.len() => {
            train.subset(&(0..n as usize).collect::<Vec<_>>())?
        }
        _ => train,
    };
    Ok((train, test))
}

fn optimizer(args: &TrainArgs) -> Result<Box<dyn Optimizer>> {
    let sgd = |momentum: f32, nesterov: bool| -> Result<Box<dyn Optimizer>> {
        Ok(Box::new(Sgd::new(SgdConfig {
            momentum,
            nesterov,
            weight_decay: args.weight_decay,
            ..SgdConfig::new(args.lr)
        })?))
    };
    match args.optimizer {
        OptimizerKind::Sgd => sgd(0.0, false),
        OptimizerKind::Momentum => sgd(0.9, false),
        OptimizerKind::Nesterov => sgd(0.9, true),
        OptimizerKind::Adam => Ok(Box::new(Adam::new(AdamConfig {
            weight_decay: args.weight_decay,
            ..AdamConfig::adam(args.lr)
        })?)),
        OptimizerKind::Adamw => Ok(Box::new(Adam::new(AdamConfig {
            weight_decay: args.weight_decay,
            ..AdamConfig::adamw(args.lr)
        })?)),
    }
}

/// Per-epoch history for the plots.
#[derive(Default)]
struct History {
    train_loss: Vec<(f64, f64)>,
    test_loss: Vec<(f64, f64)>,
    train_acc: Vec<(f64, f64)>,
    test_acc: Vec<(f64, f64)>,
}

impl History {
    fn plot(&self, out: &Path) -> Result<()> {
        let series = |name: &str, points: &[(f64, f64)]| Series {
            name: name.into(),
            points: points.to_vec(),
        };
        line_chart(
            &out.join("loss.png"),
            Labels {
                title: "Loss",
                x: "epoch",
                y: "loss per sample",
            },
            &[
                series("train", &self.train_loss),
                series("test", &self.test_loss),
            ],
        )?;
        line_chart(
            &out.join("accuracy.png"),
            Labels {
                title: "Accuracy",
                x: "epoch",
                y: "accuracy (%)",
            },
            &[
                series("train", &self.train_acc),
                series("test", &self.test_acc),
            ],
        )
    }
}

fn save(model: &mut dyn Module, path: &Path) -> Result<StateDict> {
    let state = state_dict(model);
    checkpoint::save(path, &state).with_context(|| format!("could not save {}", path.display()))?;
    Ok(state)
}

/// Runs `ventral train`.
///
/// # Errors
/// Bad data, model or output directory; a loss that becomes NaN or infinite.
pub fn run(args: TrainArgs) -> Result<()> {
    let (train, test) = load_datasets(&args)?;
    let classes = train.num_classes();
    let mut model = build(&args.model, classes, args.seed)?;
    if let Some(init) = &args.init {
        let state = checkpoint::load(init)?;
        load_state_dict(model.as_mut(), &state)
            .with_context(|| format!("--init {}", init.display()))?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    let config = json!({"args": &args, "train_samples": train.len(), "test_samples": test.len(), "classes": classes});
    checkpoint::write_atomically(
        &args.out.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )
    .with_context(|| format!("cannot write to {}", args.out.display()))?;
    let mut metrics = MetricsWriter::open(&args.out.join("metrics.jsonl"), true)?;

    let (mean, std) = train.channel_mean_std();
    let train_count = train.len();
    let mut loader = DataLoader::new(train, args.batch_size as usize)?
        .seed(args.seed)
        .normalize(mean.clone(), std.clone())?
        .prefetch(Prefetch::Background);
    if !args.no_shuffle {
        loader = loader.shuffle();
    }
    let test_loader = DataLoader::new(test, 1000)?
        .normalize(mean, std)?
        .prefetch(Prefetch::Background);
    let mut opt = optimizer(&args)?;
    let steps_per_epoch = loader.num_batches() as u64;
    let total_steps = steps_per_epoch * args.epochs as u64;
    let mut history = History::default();
    let mut best = f64::NEG_INFINITY;
    let mut step = 0u64;
    let run_start = Instant::now();
    model.set_mode(Mode::Train);

    for epoch in 0..args.epochs as u64 {
        let bar = progress::bar(
            train_count as u64,
            &format!("epoch {}/{}", epoch + 1, args.epochs),
            args.quiet,
        );
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0u64, 0u64);
        for batch in loader.epoch(epoch) {
            let lr = learning_rate(args.schedule, args.lr, step, total_steps);
            opt.set_learning_rate(lr);
            let n = batch.labels.len();
            let x = Tensor::from_vec(batch.inputs, batch.shape)?;
            let logits = model.forward(&x)?;
            let loss = loss_of(args.loss, &logits, &batch.labels, classes)?;
            let value = loss.item()?;
            if !value.is_finite() {
                bar.abandon();
                bail!(
                    "the loss became {value} at step {step} (epoch {}); the last good checkpoint is {}. Try a smaller --lr.",
                    epoch + 1,
                    args.out.join("last.safetensors").display()
                );
            }
            let grads = loss.backward()?;
            opt.step(model.as_mut(), &grads)?;
            step += 1;
            loss_sum += value as f64 * n as f64;
            correct += argmax_rows(&logits.to_vec(), classes)
                .iter()
                .zip(&batch.labels)
                .filter(|(p, l)| p == l)
                .count() as u64;
            seen += n as u64;
            bar.inc(n as u64);
            bar.set_message(format!(
                "loss {:.4}  acc {:.2}%",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            ));
            if step.is_multiple_of(100) {
                metrics.write(&json!({"kind": "step", "step": step, "epoch": epoch + 1, "loss": value, "lr": lr}))?;
            }
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let eval = evaluate(model.as_mut(), &test_loader, args.loss, classes)?;
        let (train_loss, train_acc) = (
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
        );
        let images_per_sec = seen as f64 / seconds;
        metrics.write(&json!({
            "kind": "epoch", "epoch": epoch + 1, "step": step,
            "train_loss": train_loss, "train_accuracy": train_acc,
            "test_loss": eval.loss, "test_accuracy": eval.accuracy,
            "lr": opt.learning_rate(), "seconds": seconds, "images_per_sec": images_per_sec,
        }))?;
        println!(
            "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  |  test loss {:.4} acc {:6.2}%  |  {:.0} img/s, {:.1} s",
            epoch + 1,
            args.epochs,
            train_loss,
            100.0 * train_acc,
            eval.loss,
            100.0 * eval.accuracy,
            images_per_sec,
            seconds
        );
        save(model.as_mut(), &args.out.join("last.safetensors"))?;
        if eval.accuracy > best {
            best = eval.accuracy;
            save(model.as_mut(), &args.out.join("best.safetensors"))?;
        }
        let e = (epoch + 1) as f64;
        history.train_loss.push((e, train_loss));
        history.test_loss.push((e, eval.loss));
        history.train_acc.push((e, 100.0 * train_acc));
        history.test_acc.push((e, 100.0 * eval.accuracy));
        history.plot(&args.out)?;
    }
    println!(
        "best test accuracy {:.2}% in {:.1} s; wrote {}",
        100.0 * best,
        run_start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
