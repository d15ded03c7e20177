//! Weight initialisation from a seeded generator: PyTorch's defaults for `Linear` and
//! `Conv2d`, and the named schemes (Kaiming, Xavier, constant).
//!
//! Every tensor draws from its own stream, numbered in construction order, so the same seed
//! builds the same model bit for bit.

use std::cell::Cell;

use ventral_autograd::{Tensor, rng};

use crate::error::Result;

thread_local! {
    static SHAPES_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`Init`] on this thread producing zeros instead of random values.
///
/// For counting parameters or describing a model's layers, where the values never matter:
/// zeros come from freshly mapped pages and cost nothing, while drawing a VGG's 138 million
/// random weights takes seconds.
pub fn shapes_only<R>(f: impl FnOnce() -> R) -> R {
    let previous = SHAPES_ONLY.with(|flag| flag.replace(true));
    let result = f();
    SHAPES_ONLY.with(|flag| flag.set(previous));
    result
}

fn shapes_only_active() -> bool {
    SHAPES_ONLY.with(Cell::get)
}

/// Hands out one random stream per tensor from a model seed.
#[derive(Debug, Clone)]
pub struct Init {
    seed: u64,
    next: u64,
}

impl Init {
    /// A generator for a model built from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, next: 0 }
    }

    /// The seed of the next tensor's stream: [`rng::child_seed`] of the model seed and a
    /// counter from 1.
    pub fn next_seed(&mut self) -> u64 {
        self.next += 1;
        rng::child_seed(self.seed, self.next)
    }

    /// Uniform in `[-bound, bound)`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn uniform(&mut self, shape: &[usize], bound: f32) -> Result<Tensor> {
        let seed = self.next_seed();
        if shapes_only_active() {
            return Ok(Tensor::zeros(shape.to_vec())?);
        }
        Ok(Tensor::rand_uniform(shape.to_vec(), -bound, bound, seed)?)
    }

    /// Normal with mean 0 and standard deviation `std`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn normal(&mut self, shape: &[usize], std: f32) -> Result<Tensor> {
        let seed = self.next_seed();
        if shapes_only_active() {
            return Ok(Tensor::zeros(shape.to_vec())?);
        }
        Ok(Tensor::rand_normal(shape.to_vec(), 0.0, std, seed)?)
    }

    /// PyTorch's default for `Linear` and `Conv2d` weights: Kaiming-uniform with `a = √5`,
    /// whose bound `gain · √(3 / fan_in)` with `gain = √(2 / (1 + a²))` works out to
    /// `1 / √fan_in`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn pytorch_default_weight(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        self.uniform(shape, 1.0 / (fan_in.max(1) as f32).sqrt())
    }

    /// PyTorch's default bias: uniform in `±1 / √fan_in`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn pytorch_default_bias(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        self.uniform(shape, 1.0 / (fan_in.max(1) as f32).sqrt())
    }

    /// Kaiming (He) normal for ReLU networks, fan-in mode: std `√(2 / fan_in)`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn kaiming_normal(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        self.normal(shape, (2.0 / fan_in.max(1) as f32).sqrt())
    }

    /// Kaiming (He) normal, fan-out mode (torchvision's ResNet and VGG convolutions): std
    /// `√(2 / fan_out)`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn kaiming_normal_fan_out(&mut self, shape: &[usize], fan_out: usize) -> Result<Tensor> {
        self.normal(shape, (2.0 / fan_out.max(1) as f32).sqrt())
    }

    /// Kaiming (He) uniform for ReLU networks: bound `√(6 / fan_in)`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn kaiming_uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        self.uniform(shape, (6.0 / fan_in.max(1) as f32).sqrt())
    }

    /// Xavier (Glorot) uniform: bound `√(6 / (fan_in + fan_out))`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn xavier_uniform(
        &mut self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
    ) -> Result<Tensor> {
        self.uniform(shape, (6.0 / (fan_in + fan_out).max(1) as f32).sqrt())
    }

    /// Xavier (Glorot) normal: std `√(2 / (fan_in + fan_out))`.
    ///
    /// # Errors
    /// If the shape is invalid.
    pub fn xavier_normal(
        &mut self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
    ) -> Result<Tensor> {
        self.normal(shape, (2.0 / (fan_in + fan_out).max(1) as f32).sqrt())
    }
}

/// A tensor filled with `value` (also `zeros` with 0).
///
/// # Errors
/// If the shape is invalid.
pub fn constant(shape: &[usize], value: f32) -> Result<Tensor> {
    Ok(Tensor::full(shape.to_vec(), value)?)
}
