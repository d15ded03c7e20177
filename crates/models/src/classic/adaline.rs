//! Widrow and Hoff's Adaline (~1960).

use ventral_nn::Result;

use super::{dot, rows};

/// An adaptive linear element: a linear output `s = w·x + b`, quantised to `±1` for
/// classification, trained by the delta rule (Widrow–Hoff, LMS) on the *linear* output:
/// `w ← w + η(d − s)·x`, `b ← b + η(d − s)` — stochastic gradient descent on the squared error
/// `E = ½(d − s)²`, whose gradient is `−(d − s)·x`. With a small step it settles near the
/// least-squares solution.
///
/// ```
/// use ventral_models::classic::Adaline;
///
/// // d = 2x - 1 is linear, so the LMS rule finds it exactly.
/// let xs = [0.0, 0.5, 1.0];
/// let mut a = Adaline::new(1, 0.2)?;
/// for _ in 0..500 {
///     a.epoch(&xs, &[-1.0, 0.0, 1.0])?;
/// }
/// assert!((a.weights[0] - 2.0).abs() < 1e-3 && (a.bias + 1.0).abs() < 1e-3);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adaline {
    /// One weight per input.
    pub weights: Vec<f32>,
    /// The bias weight (on a constant input of 1).
    pub bias: f32,
    /// The step size `η`.
    pub learning_rate: f32,
}

impl Adaline {
    /// An Adaline with `inputs` inputs, zero weights and step size `learning_rate`.
    ///
    /// # Errors
    /// If `inputs` is zero or the step size is not a positive number.
    pub fn new(inputs: usize, learning_rate: f32) -> Result<Self> {
        super::check_unit("Adaline", inputs, learning_rate)?;
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

    /// The linear output `s = w·x + b`.
    pub fn output(&self, x: &[f32]) -> f32 {
        dot(&self.weights, x) + self.bias
    }

    /// The quantised output: `+1` if `s ≥ 0`, else `−1`.
    pub fn predict(&self, x: &[f32]) -> f32 {
        if self.output(x) >= 0.0 { 1.0 } else { -1.0 }
    }

    /// One delta-rule step towards `target`; returns the error `d − s` before the step.
    pub fn step(&mut self, x: &[f32], target: f32) -> f32 {
        let error = target - self.output(x);
        self.nudge(x, self.learning_rate * error);
        error
    }

    /// `w ← w + a·x`, `b ← b + a`.
    pub(crate) fn nudge(&mut self, x: &[f32], a: f32) {
        for (w, xi) in self.weights.iter_mut().zip(x) {
            *w += a * xi;
        }
        self.bias += a;
    }

    /// One pass of delta-rule steps over the rows of `xs` in order; returns the mean of
    /// `½(d − s)²` over the pass (each error taken before its step).
    ///
    /// # Errors
    /// If `xs` is not `targets.len()` rows of [`Adaline::inputs`] values.
    pub fn epoch(&mut self, xs: &[f32], targets: &[f32]) -> Result<f32> {
        let d = self.inputs();
        let n = rows("Adaline", xs, d, targets.len())?;
        let sum: f32 = xs
            .chunks_exact(d)
            .zip(targets)
            .map(|(x, &t)| 0.5 * self.step(x, t).powi(2))
            .sum();
        Ok(sum / n as f32)
    }

    /// The mean of `½(d − s)²` over the rows, without learning.
    ///
    /// # Errors
    /// As [`Adaline::epoch`].
    pub fn squared_error(&self, xs: &[f32], targets: &[f32]) -> Result<f32> {
        let d = self.inputs();
        let n = rows("Adaline", xs, d, targets.len())?;
        let sum: f32 = xs
            .chunks_exact(d)
            .zip(targets)
            .map(|(x, &t)| 0.5 * (t - self.output(x)).powi(2))
            .sum();
        Ok(sum / n as f32)
    }
}

impl super::BinaryUnit for Adaline {
    fn inputs(&self) -> usize {
        self.weights.len()
    }
    fn score(&self, x: &[f32]) -> f32 {
        self.output(x)
    }
    fn learn(&mut self, x: &[f32], positive: bool) -> bool {
        let target = if positive { 1.0 } else { -1.0 };
        let wrong = self.predict(x) != target;
        self.step(x, target);
        wrong
    }
}
