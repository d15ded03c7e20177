//! Activation functions as layers (no parameters).

use ventral_autograd::Tensor;

use crate::error::Result;
use crate::module::{Module, Slot};

/// `max(0, x)`.
///
/// # Shapes
/// Any; the output has the input's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.relu()?)
    }
    fn visit(&mut self, _: &str, _: &mut dyn FnMut(&str, Slot<'_>)) {}
    fn describe(&self) -> String {
        "ReLU".into()
    }
}

/// `1 / (1 + e^-x)`.
///
/// # Shapes
/// Any; the output has the input's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sigmoid;

impl Module for Sigmoid {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.sigmoid()?)
    }
    fn visit(&mut self, _: &str, _: &mut dyn FnMut(&str, Slot<'_>)) {}
    fn describe(&self) -> String {
        "Sigmoid".into()
    }
}

/// `tanh(x)`.
///
/// # Shapes
/// Any; the output has the input's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.tanh()?)
    }
    fn visit(&mut self, _: &str, _: &mut dyn FnMut(&str, Slot<'_>)) {}
    fn describe(&self) -> String {
        "Tanh".into()
    }
}
