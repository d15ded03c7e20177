//! The zoo by name: what `ventral train --model NAME` can build.

use ventral_nn::{Error, Module, Result};

use crate::lenet::LeNet5;

/// One line of the zoo: name, year, paper, input shape and default class count.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// The name the CLI accepts.
    pub name: &'static str,
    /// Year of the paper.
    pub year: u16,
    /// The paper it follows.
    pub paper: &'static str,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Classes when none are given.
    pub default_classes: usize,
}

const ZOO: &[ModelInfo] = &[ModelInfo {
    name: "lenet5",
    year: 1998,
    paper: "LeCun et al., Gradient-based learning applied to document recognition",
    input: [1, 28, 28],
    default_classes: 10,
}];

/// Every model in the zoo.
pub fn models() -> &'static [ModelInfo] {
    ZOO
}

/// Builds model `name` with `num_classes` outputs, initialised from `seed`.
///
/// # Errors
/// [`Error::Config`] naming the valid models if `name` is unknown.
pub fn build(name: &str, num_classes: usize, seed: u64) -> Result<Box<dyn Module>> {
    match name {
        "lenet5" => Ok(Box::new(LeNet5::new(num_classes, seed)?)),
        _ => Err(Error::config(
            "model",
            format!(
                "unknown model `{name}`; valid models: {}",
                ZOO.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}
