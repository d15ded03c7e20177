//! `ventral eval`: accuracy, loss, per-class accuracy and a confusion matrix of saved weights.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use ventral_models::{ModelOptions, build_with, find};
use ventral_nn::checkpoint;
use ventral_nn::data::{
    DataLoader, Dataset, FolderOptions, ImageFolder, InMemoryDataset, Prefetch, Split,
    open_image_folder,
};
use ventral_nn::load_state_dict;

use crate::data_dir::load_named;
use crate::report::plot::confusion_matrix;
use crate::train::{EVAL_BATCH, LossKind, RunModel, evaluate, run_for};

/// The most classes whose full confusion matrix is printed, plotted or written as JSON
/// (`classes²` cells); past it only per-class accuracies and the non-zero cells are shown.
const DENSE_CLASSES: usize = 100;

/// Arguments of `ventral eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model architecture the weights belong to.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// A state dict: safetensors (e.g. `runs/latest/best.safetensors`) or PyTorch `.pth`.
    #[arg(long)]
    weights: PathBuf,
    /// Dataset whose test split to evaluate on, or folder:DIR (its val/ or test/ images, split
    /// and normalised as the run beside --weights did).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Directory holding the dataset's files (default: the repository's `data/<dataset>`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of tables (`confusion`: rows of counts, or past 100
    /// classes `[true, predicted, count]` for its non-zero cells).
    #[arg(long)]
    json: bool,
    /// Also draw the confusion matrix as a PNG heat map to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The training run's config.json (default: the one beside --weights, if it is a run of
    /// --model): the model is rebuilt as that run adapted it (--in-channels, --num-classes),
    /// the test set keeps the run's --classes, inputs are normalised with its statistics.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `ventral eval`.
///
/// # Errors
/// Missing or corrupt weights or data, or weights of another architecture.
pub fn run(args: EvalArgs) -> Result<()> {
    // The run the weights come from (its config.json): the adapted model it trained, its
    // --classes and its normalisation.
    let run = run_for(&args.model, args.config.as_deref(), &args.weights)?;
    if let Some(dir) = args.dataset.strip_prefix("folder:") {
        let (test, mean, std) = folder_test_set(&args, dir, run.as_ref())?;
        let options = run
            .map(|r| r.options)
            .unwrap_or_else(|| ModelOptions::new(test.num_classes()));
        return report(&args, test, &options, (mean, std), Prefetch::Workers(2));
    }
    // Normalise with the training set's statistics, as training did.
    let dir = args.data_dir.as_deref();
    let mut train = load_named(&args.dataset, dir, Split::Train)?;
    let mut test = load_named(&args.dataset, dir, Split::Test)?;
    let mut options = ModelOptions::new(train.num_classes());
    let mut stats = None;
    if let Some(run) = &run {
        if let Some(classes) = &run.classes {
            let pick = |d: &InMemoryDataset| {
                d.select_classes(classes)
                    .with_context(|| format!("the run's --classes on {}", args.dataset))
            };
            (train, test) = (pick(&train)?, pick(&test)?);
        }
        options = run.options;
        if run.dataset == args.dataset {
            stats = Some((run.mean.clone(), run.std.clone()));
        }
    }
    let stats = stats.unwrap_or_else(|| train.channel_mean_std());
    report(&args, test, &options, stats, Prefetch::Background)
}

/// The validation set of `--dataset folder:DIR` as the run beside `--weights` split and
/// normalised it (its config.json: image size, validation split and seed, statistics), or
/// without one, at the images' size with statistics computed from `train/`.
fn folder_test_set(
    args: &EvalArgs,
    dir: &str,
    run: Option<&RunModel>,
) -> Result<(ImageFolder, Vec<f32>, Vec<f32>)> {
    let root = match &args.data_dir {
        Some(d) => d.join(dir),
        None => std::path::PathBuf::from(dir),
    };
    if !root.is_dir() {
        bail!("--dataset folder:{dir}: {} is not a folder", root.display());
    }
    let config = args
        .weights
        .parent()
        .map(|d| d.join("config.json"))
        .filter(|p| p.is_file())
        .map(|p| -> Result<serde_json::Value> {
            let bytes = ventral_nn::limits::read_regular(&p, 16 << 20)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", p.display()))
        })
        .transpose()?;
    let args_of = |key: &str| config.as_ref().map(|c| c["args"][key].clone());
    let floats = |key: &str| -> Option<Vec<f32>> {
        config.as_ref()?["normalize"][key]
            .as_array()?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect()
    };
    let options = FolderOptions {
        channels: run
            .and_then(|r| r.options.in_channels)
            .or_else(|| find(&args.model).map(|m| m.input[0]))
            .unwrap_or(3),
        size: args_of("image_size")
            .and_then(|v| v.as_u64())
            .map(|s| s as usize),
        strict: false,
        val_split: args_of("val_split").and_then(|v| v.as_f64()),
        seed: args_of("seed").and_then(|v| v.as_u64()).unwrap_or(0),
    };
    let (mut train, test, _) = open_image_folder(&root, &options)?;
    let (mean, std) = match (floats("mean"), floats("std")) {
        (Some(mean), Some(std)) => (mean, std),
        _ => {
            let (stats, _) = train.verify(2)?;
            (stats.mean, stats.std)
        }
    };
    Ok((test, mean, std))
}

/// Evaluates the weights on `test`, normalised with `(mean, std)`, and prints the report.
fn report<D: Dataset + Send + Sync + 'static>(
    args: &EvalArgs,
    test: D,
    options: &ModelOptions,
    (mean, std): (Vec<f32>, Vec<f32>),
    prefetch: Prefetch,
) -> Result<()> {
    let classes = options.num_classes;
    if let Some(path) = args.plot.as_ref().filter(|_| classes > DENSE_CLASSES) {
        bail!(
            "--plot {}: {classes} classes are too many to draw (at most {DENSE_CLASSES})",
            path.display()
        );
    }
    let mut model = build_with(&args.model, options, 0)?;
    let state = checkpoint::load(&args.weights)?;
    // NaN or infinite weights give NaN logits, whose argmax is class 0: a meaningless
    // accuracy that must not pass for a result.
    state
        .check_finite()
        .with_context(|| format!("{}: the weights are not finite", args.weights.display()))?;
    load_state_dict(model.as_mut(), &state).with_context(|| {
        format!(
            "{} does not fit model {}",
            args.weights.display(),
            args.model
        )
    })?;
    let loader = DataLoader::new(test, EVAL_BATCH)?
        .normalize(mean, std)?
        .prefetch(prefetch);
    let eval = evaluate(model.as_mut(), &loader, LossKind::CrossEntropy, classes)?;
    if !eval.loss.is_finite() {
        bail!(
            "{}: the loss on {} is {}: the model's outputs are not finite, so the accuracy means nothing",
            args.weights.display(),
            args.dataset,
            eval.loss
        );
    }
    let per_class: Vec<f64> = (0..classes)
        .map(|c| eval.confusion.class_accuracy(c))
        .collect();
    let dense = (classes <= DENSE_CLASSES).then(|| eval.confusion.dense());
    // `dense` is there whenever `--plot` is (the class count was checked above).
    if let (Some(path), Some(dense)) = (&args.plot, &dense) {
        let names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();
        let title = format!(
            "{} on {}: {:.2} % accuracy",
            args.model,
            args.dataset,
            100.0 * eval.accuracy
        );
        confusion_matrix(path, &title, &names, dense)?;
    }
    if args.json {
        let mut out = json!({"model": args.model, "dataset": args.dataset, "accuracy": eval.accuracy, "loss": eval.loss,
                   "per_class_accuracy": per_class});
        out["confusion"] = match &dense {
            Some(rows) => json!(rows),
            // [true, predicted, count] for the cells that are not zero.
            None => json!(
                eval.confusion
                    .nonzero()
                    .map(|((t, p), n)| [t as u64, p as u64, n])
                    .collect::<Vec<_>>()
            ),
        };
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} on {} test: accuracy {:.2}%, loss {:.4}",
        args.model,
        args.dataset,
        100.0 * eval.accuracy,
        eval.loss
    );
    let Some(dense) = dense else {
        println!("\nper-class accuracy");
        for (c, acc) in per_class.iter().enumerate() {
            println!("{c:>6}{:>8.2}%", 100.0 * acc);
        }
        return Ok(());
    };
    println!("\nconfusion matrix (rows: true class, columns: predicted)");
    print!("{:>6}", "");
    for c in 0..classes {
        print!("{c:>6}");
    }
    println!("{:>9}", "acc");
    for (c, row) in dense.iter().enumerate() {
        print!("{c:>6}");
        for v in row {
            print!("{v:>6}");
        }
        println!("{:>8.2}%", 100.0 * per_class[c]);
    }
    Ok(())
}
