//! Rosenblatt's perceptron (~1957).

use ventral_nn::Result;

use super::{FitReport, dot, rows};

/// A threshold unit `f(x) = 1 if w·x + b > 0 else 0`, trained online by Rosenblatt's rule
/// `w_i ← w_i + α(d − y)·x_i` (and `b ← b + α(d − y)`), which changes the weights only on a
/// mistake. On linearly separable data it stops making mistakes after finitely many updates
/// (Novikoff's theorem); on XOR it never does, since no line separates XOR's classes.
///
/// ```
/// use ventral_models::classic::Perceptron;
///
/// // Logical AND is linearly separable.
/// let xs = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
/// let mut p = Perceptron::new(2, 0.1)?;
/// assert!(p.fit(&xs, &[0, 0, 0, 1], 100)?.converged);
/// assert_eq!(p.predict(&[1.0, 1.0]), 1);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Perceptron {
    /// One weight per input.
    pub weights: Vec<f32>,
    /// The bias (minus the threshold).
    pub bias: f32,
    /// The step size `α`.
    pub learning_rate: f32,
}

impl Perceptron {
    /// A perceptron with `inputs` inputs, zero weights and step size `learning_rate`.
    ///
    /// # Errors
    /// If `inputs` is zero or the step size is not a positive number.
    pub fn new(inputs: usize, learning_rate: f32) -> Result<Self> {
        super::check_unit("Perceptron", inputs, learning_rate)?;
        Ok(Self {
            weights: vec![0.0; inputs],
            bias: 0.0,
            learning_rate,
        })
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.weights.len()
    }

    /// The weighted sum `w·x + b`.
    pub fn activation(&self, x: &[f32]) -> f32 {
        dot(&self.weights, x) + self.bias
    }

    /// The output `1` if `w·x + b > 0`, else `0`.
    pub fn predict(&self, x: &[f32]) -> u8 {
        u8::from(self.activation(x) > 0.0)
    }

    /// One online step on sample `x` with desired output `target` (0 or 1); returns whether
    /// the perceptron was wrong (and so changed).
    pub fn step(&mut self, x: &[f32], target: u8) -> bool {
        let error = f32::from(target.min(1)) - f32::from(self.predict(x));
        if error == 0.0 {
            return false;
        }
        let a = self.learning_rate * error;
        for (w, xi) in self.weights.iter_mut().zip(x) {
            *w += a * xi;
        }
        self.bias += a;
        true
    }

    /// One pass over the rows of `xs` in order; returns the number of mistakes.
    ///
    /// # Errors
    /// If `xs` is not `targets.len()` rows of [`Perceptron::inputs`] values.
    pub fn epoch(&mut self, xs: &[f32], targets: &[u8]) -> Result<usize> {
        let d = self.inputs();
        rows("Perceptron", xs, d, targets.len())?;
        Ok(xs
            .chunks_exact(d)
            .zip(targets)
            .filter(|&(x, &t)| self.step(x, t))
            .count())
    }

    /// Passes over the data until an epoch makes no mistake, at most `max_epochs` times.
    ///
    /// # Errors
    /// As [`Perceptron::epoch`].
    pub fn fit(&mut self, xs: &[f32], targets: &[u8], max_epochs: usize) -> Result<FitReport> {
        super::fit_epochs(max_epochs, || self.epoch(xs, targets))
    }
}

impl super::BinaryUnit for Perceptron {
    fn inputs(&self) -> usize {
        self.weights.len()
    }
    fn score(&self, x: &[f32]) -> f32 {
        self.activation(x)
    }
    fn learn(&mut self, x: &[f32], positive: bool) -> bool {
        self.step(x, u8::from(positive))
    }
}
