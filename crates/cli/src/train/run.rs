//! `ventral train`'s run: the settings, data, model and optimizer, handed to the library's
//! [`Trainer`] with this command's listeners.

use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use ventral_autograd::AnomalyMode;
use ventral_nn::checkpoint;
use ventral_nn::data::{DataLoader, Dataset};
use ventral_train::{Cluster, EVAL_BATCH, FitOptions, STATE_FILE, TrainError, Trainer};

use super::adapt;
use super::args::TrainArgs;
use super::controls;
use super::history::{History, trim_metrics};
use super::interrupt;
use super::listen::Listener;
use super::resume;
use super::setup::{build_model, check_model_name, optimizer, prepare_out_dir};
use super::source;
use super::tensorboard::{self, Board};
use crate::errors::{Interrupted, finish};
use crate::report::metrics::MetricsWriter;

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

/// The command's wording of a library error: a loss that blew up names the flag to change.
fn cli_error(e: TrainError) -> anyhow::Error {
    match e {
        e @ TrainError::NonFiniteLoss { .. } => anyhow!("{e} (--lr)"),
        e => e.into(),
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
    let cluster = Rc::new(Cluster::join(args.distributed)?);
    let result = run_on(&cluster, args, given);
    finish(&cluster, result)
}

fn run_on(cluster: &Rc<Cluster>, args: TrainArgs, given: &[String]) -> Result<()> {
    let (args, saved) = match args.resume.clone() {
        Some(dir) => {
            let (args, state) = resume::prepare(args, given, &dir)?;
            (args, Some(state))
        }
        None => (args, None),
    };
    check_model_name(&args.model)?;
    controls::check(&args)?;
    cluster.check_batch(args.batch_size as usize)?;
    let leader = cluster.is_leader();
    if leader {
        prepare_out_dir(&args.out, saved.is_some(), args.overwrite)?;
    }
    let source::Loaded {
        train,
        test,
        mean,
        std,
    } = source::load(&args)?;
    source::check_channels(&mean, train.sample_shape(), &args.dataset)?;
    let classes = adapt::head_size(&args, train.num_classes())?;
    let options = adapt::model_options(&args, train.sample_shape(), classes);
    let mut model = build_model(
        &args.model,
        &args.dataset,
        train.sample_shape(),
        &options,
        args.seed,
    )?;
    if saved.is_none()
        && let Some(report) = adapt::load_init(&args, model.as_mut())?
        && leader
    {
        println!("{report}");
    }
    let mut model = adapt::freeze(&args, model)?;
    let class_names = adapt::class_names(&args, train.class_names());
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
        class_names: class_names.as_deref(),
    };
    let config = serde_json::to_string_pretty(&config)?;
    let (train_prefetch, test_prefetch) = (
        source::prefetch(&args, &train),
        source::prefetch(&args, &test),
    );
    let mut loader = DataLoader::new(train, args.batch_size as usize)?
        .seed(args.seed)
        .normalize(mean.clone(), std.clone())?
        .shard(cluster.rank(), cluster.size())?
        .prefetch(train_prefetch);
    loader = source::augment(loader, &args)?;
    if !args.no_shuffle {
        loader = loader.shuffle();
    }
    let test_loader = DataLoader::new(test, EVAL_BATCH)?
        .normalize(mean, std)?
        .prefetch(test_prefetch);

    let filters = tensorboard::first_filters(model.as_mut());
    let mut trainer = Trainer::new(model, optimizer(&args)?, classes)
        .with_loss(args.loss.into())
        .with_schedule(args.schedule.into())
        .with_cluster(Rc::clone(cluster));
    if let Some(max_norm) = args.clip_grad_norm {
        trainer = trainer.with_clip_grad_norm(max_norm);
    }
    let mut trainer = controls::apply(trainer, &args);
    // Checked whole against the model, optimizer and data before anything is restored.
    let saved_step = saved.as_ref().map(|s| s.step);
    if let Some(state) = saved {
        let path = args.out.join(STATE_FILE);
        trainer
            .restore(state, &path, &loader)
            .with_context(|| format!("cannot resume from {}", args.out.display()))?;
    }

    let stop = trainer.stop_handle();
    let mut listener = Listener::new(leader, args.quiet, args.out.clone(), Arc::clone(&stop));
    listener.budget = args.stop_after_steps;
    if leader {
        checkpoint::write_atomically(&args.out.join("config.json"), config.as_bytes())
            .with_context(|| format!("cannot write to {}", args.out.display()))?;
        let metrics_path = args.out.join("metrics.jsonl");
        listener.history = match saved_step {
            Some(step) => trim_metrics(&metrics_path, step)?,
            None => History::default(),
        };
        listener.metrics = Some(MetricsWriter::open(&metrics_path, saved_step.is_none())?);
    }
    interrupt::install(stop)?;
    // Anomaly mode: the first op that produces NaN or inf fails, naming the op and layer.
    let _anomaly = args.anomaly.then(AnomalyMode::enable);
    let options = FitOptions {
        epochs: u64::from(args.epochs),
        out: Some(args.out.clone()),
        save_every: args.save_every,
        seed: args.seed,
    };
    let mut board = match leader {
        true => Board::open(&args.out, saved_step).with_filters(filters),
        false => Board::off(),
    };
    let end = trainer
        .fit(
            &loader,
            &test_loader,
            &options,
            &mut [&mut listener, &mut board],
        )
        .map_err(cli_error)?;
    source::report_failures(&[loader.dataset(), test_loader.dataset()]);
    if end.stopped {
        listener.abandon();
        return Err(Interrupted {
            dir: args.out.clone(),
            step: end.step,
        }
        .into());
    }
    if leader && end.early_stopped {
        let note = controls::early_stop_note(&trainer, &args);
        println!("{}", note.unwrap_or_default());
        // Once: a resumed run that early stopping had already ended trains nothing.
        if saved_step != Some(end.step) {
            listener.note_early_stop(end.step);
        }
    }
    if leader {
        println!(
            "best test accuracy {:.2}% in {:.1} s; wrote {}",
            100.0 * end.best_accuracy,
            end.seconds,
            args.out.display()
        );
    }
    Ok(())
}
