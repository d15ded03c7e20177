//! `ventral eval`: accuracy, loss, per-class accuracy and a confusion matrix of saved weights.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use ventral_models::build;
use ventral_nn::checkpoint;
use ventral_nn::data::{DataLoader, Dataset, Prefetch, Split};
use ventral_nn::load_state_dict;

use crate::data_dir::load_named;
use crate::report::plot::confusion_matrix;
use crate::train::{EVAL_BATCH, LossKind, evaluate};

/// The most classes whose full confusion matrix is printed, plotted or written as JSON
/// (`classes²` cells); past it only per-class accuracies and the non-zero cells are shown.
const DENSE_CLASSES: usize = 100;

/// Arguments of `ventral eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model architecture the weights belong to.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// A safetensors state dict (e.g. `runs/latest/best.safetensors`).
    #[arg(long)]
    weights: PathBuf,
    /// Dataset whose test split to evaluate on.
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
}

/// Runs `ventral eval`.
///
/// # Errors
/// Missing or corrupt weights or data, or weights of another architecture.
pub fn run(args: EvalArgs) -> Result<()> {
    // Normalise with the training set's statistics, as training did.
    let dir = args.data_dir.as_deref();
    let train = load_named(&args.dataset, dir, Split::Train)?;
    let test = load_named(&args.dataset, dir, Split::Test)?;
    let classes = train.num_classes();
    if let Some(path) = args.plot.as_ref().filter(|_| classes > DENSE_CLASSES) {
        bail!(
            "--plot {}: {classes} classes are too many to draw (at most {DENSE_CLASSES})",
            path.display()
        );
    }
    let (mean, std) = train.channel_mean_std();
    let mut model = build(&args.model, classes, 0)?;
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
        .prefetch(Prefetch::Background);
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
