//! What a training run is made of: datasets, model, optimizer, loss, output directory — each
//! checked up front so that a bad flag fails in one clear line before any work is done.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ventral_models::{ModelOptions, Training, build_with, find, models};
use ventral_nn::data::{self, Dataset, InMemoryDataset, Split};
use ventral_nn::optim::{Adam, AdamConfig, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use ventral_nn::{Mode, Module, Optimizer, Tensor};

use super::args::{OptimizerKind, TrainArgs};
use ventral_train::STATE_FILE;

pub use crate::data_dir::default_data_dir;

/// The models `--model` accepts (those trained by autograd).
pub fn trainable_models() -> Vec<&'static str> {
    models()
        .iter()
        .filter(|m| m.training == Training::Autograd)
        .map(|m| m.name)
        .collect()
}

/// Fails unless `name` is a zoo model trained by autograd, listing the valid ones.
///
/// # Errors
/// For any other name.
pub fn check_model_name(name: &str) -> Result<()> {
    match find(name) {
        Some(info) if info.training == Training::Autograd => Ok(()),
        Some(_) => bail!(
            "model `{name}` learns by its own rule, not by gradient descent; trainable models: {}",
            trainable_models().join(", ")
        ),
        None => bail!(
            "unknown model `{name}`; valid models: {}",
            trainable_models().join(", ")
        ),
    }
}

/// The files that make a directory a run's: a new run never writes over them unless told.
const RUN_FILES: [&str; 3] = ["config.json", STATE_FILE, "metrics.jsonl"];

/// Creates `out` and proves it writable, before any slow work. A directory that already
/// holds a run (its `config.json`, training state or metrics) is refused unless `overwrite`
/// (or the run is being resumed, `resuming`); the new run then replaces its files as it
/// writes them (the old weights stay readable until then, e.g. as the new run's `--init`).
///
/// # Errors
/// If the directory holds a run, cannot be created or cannot be written to.
pub fn prepare_out_dir(out: &Path, resuming: bool, overwrite: bool) -> Result<()> {
    if !resuming
        && !overwrite
        && let Some(file) = RUN_FILES.iter().find(|f| out.join(f).exists())
    {
        bail!(
            "--out {} already holds a run ({file}); continue it with --resume {}, replace it with --overwrite, or pick another --out",
            out.display(),
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let probe = out.join(format!(".ventral-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("output directory {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn first(dataset: InMemoryDataset, limit: Option<u64>) -> Result<InMemoryDataset> {
    Ok(match limit {
        Some(n) if (n as usize) < dataset.len() => {
            dataset.subset(&(0..n as usize).collect::<Vec<_>>())?
        }
        _ => dataset,
    })
}

/// Training and test sets; a dataset without a test split holds out every fifth sample.
///
/// # Errors
/// Missing or corrupt files, an unknown dataset name.
pub fn load_datasets(args: &TrainArgs) -> Result<(InMemoryDataset, InMemoryDataset)> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None if args.dataset.starts_with("csv:") => PathBuf::from("."),
        None => default_data_dir(&args.dataset),
    };
    let train =
        data::load(&args.dataset, &dir, Split::Train).map_err(|e| match (&e, &args.data_dir) {
            (data::DataError::NotFound { .. }, None) => {
                anyhow::anyhow!("{e}; {}", crate::data_dir::data_dir_hint(&args.dataset))
            }
            _ => e.into(),
        })?;
    let (train, test) = match data::load(&args.dataset, &dir, Split::Test) {
        Ok(test) if !args.dataset.starts_with("csv:") => (train, test),
        _ => {
            // Hold out a fixed, seed-independent 20 % (every fifth sample) as the test set.
            let all: Vec<usize> = (0..train.len()).collect();
            let (held, kept): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&i| i % 5 == 4);
            if held.is_empty() {
                bail!(
                    "{} has {} samples: too few to hold out a test set",
                    args.dataset,
                    train.len()
                );
            }
            (train.subset(&kept)?, train.subset(&held)?)
        }
    };
    let (train, test) = super::adapt::select_classes(args, train, test)?;
    Ok((
        first(train, args.limit_train)?,
        first(test, args.limit_test)?,
    ))
}

/// Builds `name` as `options` say for samples of `shape` and checks it takes them: one
/// forward pass of a zero sample in eval mode must give `[1, classes]` logits.
///
/// # Errors
/// If the model cannot be built, or rejects the dataset's samples.
pub fn build_model(
    name: &str,
    dataset: &str,
    shape: [usize; 3],
    options: &ModelOptions,
    seed: u64,
) -> Result<Box<dyn Module>> {
    let classes = options.num_classes;
    let mut model = build_with(name, options, seed)?;
    let mut expects = find(name).map(|m| m.input).unwrap_or(shape);
    if let Some(c) = options.in_channels {
        expects[0] = c;
    }
    let [c, h, w] = shape;
    let hint = if c != expects[0] && !matches!(name, "linear" | "mlp") {
        format!(" (--in-channels {c} rebuilds its first layer for them)")
    } else {
        String::new()
    };
    let out = ventral_train::predict(model.as_mut(), &Tensor::zeros([1, c, h, w])?).with_context(|| {
        format!(
            "model {name} (built for {}x{}x{} inputs) cannot take {dataset}'s samples of {c}x{h}x{w}{hint}",
            expects[0], expects[1], expects[2]
        )
    })?;
    if out.dims() != [1, classes] {
        bail!(
            "model {name} gives outputs of shape {:?} for {dataset}'s {c}x{h}x{w} samples; training needs [N, {classes}]",
            out.dims()
        );
    }
    model.set_mode(Mode::Train);
    Ok(model)
}

/// The update rule of `--optimizer`.
///
/// # Errors
/// If a hyper-parameter is out of range.
pub fn optimizer(args: &TrainArgs) -> Result<Box<dyn Optimizer>> {
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
        OptimizerKind::Rmsprop => Ok(Box::new(RmsProp::new(RmsPropConfig {
            weight_decay: args.weight_decay,
            ..RmsPropConfig::new(args.lr)
        })?)),
    }
}
