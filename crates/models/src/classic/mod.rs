//! The classics, trained by their own learning rules rather than by autograd: Rosenblatt's
//! [`Perceptron`], Widrow and Hoff's [`Adaline`] and [`Madaline`], their one-vs-rest
//! multi-class versions ([`OneVsRest`]), and the Mark I's 20×20 "retina" ([`mark_i_retina`]).
//!
//! Data is given as rows: `xs` holds `n` samples of `inputs` values each, row-major (as
//! `InMemoryDataset::data()` stores them), next to `n` targets.

mod adaline;
mod madaline;
mod ovr;
mod perceptron;

pub use adaline::Adaline;
pub use madaline::Madaline;
pub use ovr::{BinaryUnit, OneVsRest, mark_i_retina};
pub use perceptron::Perceptron;

use ventral_nn::rng::{Purpose, SplitMix64};
use ventral_nn::{Error, Result};

/// How a training run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitReport {
    /// Epochs run.
    pub epochs: usize,
    /// Mistakes made during the last epoch (before each update).
    pub errors: usize,
    /// Whether an epoch passed without a mistake (the data was fitted).
    pub converged: bool,
}

/// Checks the settings every single-unit learner shares: at least one input and a positive,
/// finite step size.
pub(crate) fn check_unit(name: &'static str, inputs: usize, learning_rate: f32) -> Result<()> {
    if inputs == 0 || !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err(Error::config(
            name,
            format!("needs inputs > 0 and a positive step, got {inputs} and {learning_rate}"),
        ));
    }
    Ok(())
}

/// Runs `epoch` (one pass, returning its mistakes) until a pass makes none, at most
/// `max_epochs` times: the training loop the perceptron and Madaline share.
pub(crate) fn fit_epochs(
    max_epochs: usize,
    mut epoch: impl FnMut() -> Result<usize>,
) -> Result<FitReport> {
    let mut report = FitReport {
        epochs: 0,
        errors: 0,
        converged: false,
    };
    while report.epochs < max_epochs && !report.converged {
        report.errors = epoch()?;
        report.epochs += 1;
        report.converged = report.errors == 0;
    }
    Ok(report)
}

/// `w · x`.
pub(crate) fn dot(w: &[f32], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// Checks that `xs` holds `targets` rows of `inputs` values and returns the row count.
pub(crate) fn rows(what: &'static str, xs: &[f32], inputs: usize, targets: usize) -> Result<usize> {
    if inputs == 0 || xs.len() != inputs * targets {
        return Err(Error::config(
            what,
            format!(
                "{} values are not {targets} rows of {inputs} inputs",
                xs.len()
            ),
        ));
    }
    Ok(targets)
}

/// A permutation of `0..n` from `seed`: the shuffle stream of [`ventral_nn::rng`] with the
/// word `seed` (callers pass a different one per epoch).
pub(crate) fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    SplitMix64::stream(seed, Purpose::Shuffle, &[]).permutation(n)
}
