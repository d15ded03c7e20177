//! Adapting a zoo model and fine-tuning from the command line: `--in-channels`,
//! `--num-classes`, `--classes`, `--init-partial` and `--freeze`, and reading them back from a
//! run's `config.json` so that `eval`, `predict` and `summary` rebuild the model it trained.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventral_models::ModelOptions;
use ventral_nn::checkpoint;
use ventral_nn::data::{Dataset, InMemoryDataset};
use ventral_nn::{Frozen, Module, load_state_dict, load_state_dict_partial};

use super::args::TrainArgs;

/// The classes of `--classes`, in the order given (label `list[i]` becomes `i`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassList(pub Vec<usize>);

/// The most classes `--classes` may list (as many as `--num-classes` allows).
const MAX_LISTED: usize = 1_000_000;

/// Parses `0-4`, `5,6,7,8,9` or `3,1,0-2` (ranges inclusive, in the order written).
///
/// # Errors
/// Anything else, a descending range, or a class listed twice.
pub fn parse_classes(s: &str) -> Result<ClassList, String> {
    let number = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{}` is not a class number (e.g. 0-4 or 5,6,7)", t.trim()))
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return Err(format!("`{}`: a range goes up (e.g. 0-4)", part.trim()));
                }
                if b - a >= MAX_LISTED {
                    return Err(format!("`{}`: more than {MAX_LISTED} classes", part.trim()));
                }
                out.extend(a..=b);
            }
            None => out.push(number(part)?),
        }
        if out.len() > MAX_LISTED {
            return Err(format!("more than {MAX_LISTED} classes"));
        }
    }
    let mut sorted = out.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("class {} is listed twice", w[0]));
    }
    Ok(ClassList(out))
}

/// Keeps only the samples of `--classes`, relabelled, in both sets.
///
/// # Errors
/// A class outside the dataset's, or a training set left empty.
pub fn select_classes(
    args: &TrainArgs,
    train: InMemoryDataset,
    test: InMemoryDataset,
) -> Result<(InMemoryDataset, InMemoryDataset)> {
    let Some(ClassList(classes)) = &args.classes else {
        return Ok((train, test));
    };
    let pick = |d: &InMemoryDataset| d.select_classes(classes).context("--classes");
    let (train, test) = (pick(&train)?, pick(&test)?);
    if train.len() == 0 {
        bail!(
            "--classes: {} has no training samples of those classes",
            args.dataset
        );
    }
    Ok((train, test))
}

/// The class names `config.json` records: the dataset's, or with `--classes` on a dataset
/// without names, the original class numbers (so `predict` says `7`, not `2`).
pub fn class_names(args: &TrainArgs, names: Option<&[String]>) -> Option<Vec<String>> {
    match (names, &args.classes) {
        (Some(names), _) => Some(names.to_vec()),
        (None, Some(ClassList(classes))) => Some(classes.iter().map(usize::to_string).collect()),
        (None, None) => None,
    }
}

/// The size of the classifier head: `--num-classes`, else the dataset's classes.
///
/// # Errors
/// A head smaller than the dataset's classes.
pub fn head_size(args: &TrainArgs, dataset_classes: usize) -> Result<usize> {
    let Some(k) = args.num_classes else {
        return Ok(dataset_classes);
    };
    let k = k as usize;
    if k < dataset_classes {
        bail!(
            "--num-classes {k} is fewer than the {dataset_classes} classes of {}{}",
            args.dataset,
            if args.classes.is_some() {
                " as --classes selects them"
            } else {
                "; train on some of them with --classes"
            }
        );
    }
    Ok(k)
}

/// How `ventral train` builds its model: `classes` outputs for samples of `input`, the stem
/// rebuilt for `--in-channels`.
pub fn model_options(args: &TrainArgs, input: [usize; 3], classes: usize) -> ModelOptions {
    let options = ModelOptions::new(classes).input(input);
    match args.in_channels {
        Some(c) => options.in_channels(c as usize),
        None => options,
    }
}

/// Loads `--init` into `model`: strictly (as PyTorch, a missing `num_batches_tracked` is
/// fine), or with `--init-partial` what matches, returning the report to print.
///
/// # Errors
/// An unreadable file; under a strict load, one that does not fit.
pub fn load_init(args: &TrainArgs, model: &mut dyn Module) -> Result<Option<String>> {
    let Some(init) = &args.init else {
        return Ok(None);
    };
    let state = checkpoint::load(init).context("--init")?;
    if args.init_partial {
        let report = load_state_dict_partial(model, &state)
            .with_context(|| format!("--init {}", init.display()))?;
        if report.loaded.is_empty() {
            bail!(
                "--init {} --init-partial: no tensor matches model {} by name and shape ({report})",
                init.display(),
                args.model
            );
        }
        return Ok(Some(format!("--init {}: {report}", init.display())));
    }
    load_state_dict(model, &state).with_context(|| {
        format!(
            "--init {} does not fit model {} (--init-partial loads what fits)",
            init.display(),
            args.model
        )
    })?;
    Ok(None)
}

/// `model` with the parameters under `--freeze` frozen (itself when nothing is).
///
/// # Errors
/// A prefix that matches nothing in the model.
pub fn freeze(args: &TrainArgs, model: Box<dyn Module>) -> Result<Box<dyn Module>> {
    if args.freeze.is_empty() {
        return Ok(model);
    }
    let frozen = Frozen::new(model, &args.freeze)
        .with_context(|| format!("--freeze {}", args.freeze.join(",")))?;
    Ok(Box::new(frozen))
}

/// What a run's `config.json` says about the model it trained and its data, for the
/// commands that rebuild that model (`eval`, `predict`, `summary`).
#[derive(Debug, Clone)]
pub struct RunModel {
    /// The zoo model.
    pub model: String,
    /// Its classes, channels and input, as trained.
    pub options: ModelOptions,
    /// The dataset it trained on.
    pub dataset: String,
    /// `--classes`, if the run selected some.
    pub classes: Option<Vec<usize>>,
    /// The per-channel normalisation of its inputs.
    pub mean: Vec<f32>,
    /// The per-channel standard deviations.
    pub std: Vec<f32>,
}

impl RunModel {
    /// Reads `path` (a run's `config.json`, at most 16 MiB).
    ///
    /// # Errors
    /// An unreadable file or one not written by `ventral train`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = ventral_nn::limits::read_regular(path, 16 << 20)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let not_ours = || format!("{} was not written by ventral train", path.display());
        let args: TrainArgs =
            serde_json::from_value(config["args"].clone()).with_context(not_ours)?;
        let input: [usize; 3] =
            serde_json::from_value(config["input_shape"].clone()).with_context(not_ours)?;
        let classes: usize =
            serde_json::from_value(config["classes"].clone()).with_context(not_ours)?;
        let floats = |key: &str| -> Result<Vec<f32>> {
            serde_json::from_value(config["normalize"][key].clone()).with_context(not_ours)
        };
        Ok(Self {
            options: model_options(&args, input, classes),
            model: args.model,
            dataset: args.dataset,
            classes: args.classes.map(|c| c.0),
            mean: floats("mean")?,
            std: floats("std")?,
        })
    }

    /// The `config.json` beside `weights`, if there is one.
    pub fn beside(weights: &Path) -> Option<std::path::PathBuf> {
        weights
            .parent()
            .map(|d| d.join("config.json"))
            .filter(|p| p.is_file())
    }
}

/// The run whose weights `weights` are, for `eval` and `predict`: `config` (which must
/// describe `model`), else the `config.json` beside the weights when it describes `model`.
///
/// # Errors
/// An unreadable `config`, or one of another model.
pub fn run_for(model: &str, config: Option<&Path>, weights: &Path) -> Result<Option<RunModel>> {
    match config {
        Some(path) => {
            let run = RunModel::read(path)?;
            if run.model != model {
                bail!(
                    "{} describes a run of model {}, not --model {model}",
                    path.display(),
                    run.model
                );
            }
            Ok(Some(run))
        }
        None => Ok(RunModel::beside(weights)
            .and_then(|path| RunModel::read(&path).ok())
            .filter(|run| run.model == model)),
    }
}
