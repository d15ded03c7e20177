//! Running saved weights: `ventral forward` on a tensor file, `ventral predict` on images.

mod forward;
pub(crate) mod image;
mod predict;

use std::path::Path;

use anyhow::{Context, Result};
use ventral_models::{ModelOptions, build_for_input, build_with, find};
use ventral_nn::checkpoint::{self, StateDict};
use ventral_nn::{Module, load_state_dict, named_parameters};

pub use forward::{ForwardArgs, forward};
pub use predict::{PredictArgs, predict};

use crate::train::{check_model_name, run_for};

/// The class count of a checkpoint for `name`: the first dimension of its last parameter
/// (the classifier's weight or bias), else the zoo's default. It sizes the model built for
/// the weights, so it is held to `VENTRAL_MAX_CLASSES` like a dataset's.
fn classes_in(name: &str, input: [usize; 3], state: &StateDict, weights: &Path) -> Result<usize> {
    let default = find(name).map_or(10, |m| m.default_classes);
    let mut model = build_for_input(name, input, default, 0)?;
    let last = named_parameters(model.as_mut()).pop().map(|(key, _)| key);
    let classes = last
        .as_ref()
        .and_then(|key| state.get(key).and_then(|r| r.shape().first().copied()))
        .unwrap_or(default);
    let limit = ventral_nn::limits::Limits::current()?.classes;
    if classes > limit {
        anyhow::bail!(
            "{}: `{}` gives {classes} classes, more than the limit of {limit} (VENTRAL_MAX_CLASSES raises it)",
            weights.display(),
            last.unwrap_or_default()
        );
    }
    Ok(classes)
}

/// Builds model `name` for inputs of `input` (`[C, H, W]`) with the weights in `weights`
/// (classes from `classes`, else from the checkpoint), in eval mode. When the `config.json`
/// beside the weights is a run of `name`, the model is built as that run adapted it
/// (`--in-channels`, `--num-classes`).
///
/// # Errors
/// An unknown model, an unreadable checkpoint, or one for another architecture.
pub fn load_model(
    name: &str,
    weights: &Path,
    input: [usize; 3],
    classes: Option<usize>,
) -> Result<(Box<dyn Module>, usize)> {
    check_model_name(name)?;
    let state = checkpoint::load(weights)?;
    let mut options = match (run_for(name, None, weights)?, classes) {
        (Some(run), _) => run.options.input(input),
        (None, Some(k)) => ModelOptions::new(k).input(input),
        (None, None) => ModelOptions::new(classes_in(name, input, &state, weights)?).input(input),
    };
    if let Some(k) = classes {
        options.num_classes = k;
    }
    Ok((
        load_into(name, &state, weights, &options)?,
        options.num_classes,
    ))
}

/// Builds model `name` as `options` say (a run's adapted model) with the weights in
/// `weights`, in eval mode.
///
/// # Errors
/// An unknown model, an unreadable checkpoint, or one for another architecture.
pub fn load_model_as(
    name: &str,
    weights: &Path,
    options: &ModelOptions,
) -> Result<Box<dyn Module>> {
    check_model_name(name)?;
    let state = checkpoint::load(weights)?;
    load_into(name, &state, weights, options)
}

fn load_into(
    name: &str,
    state: &StateDict,
    weights: &Path,
    options: &ModelOptions,
) -> Result<Box<dyn Module>> {
    let mut model = build_with(name, options, 0)?;
    load_state_dict(model.as_mut(), state)
        .with_context(|| format!("{} does not fit model {name}", weights.display()))?;
    model.set_mode(ventral_nn::Mode::Eval);
    Ok(model)
}
