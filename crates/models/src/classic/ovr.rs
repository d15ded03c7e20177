//! One-vs-rest: a binary unit per class, the highest score wins; and the Mark I's retina.

use ventral_nn::{Error, Result};

use super::{rows, shuffled};

/// A binary classifier with its own online learning rule, usable one-vs-rest.
pub trait BinaryUnit {
    /// Number of inputs.
    fn inputs(&self) -> usize;
    /// How strongly the unit says "positive" (compared across classes).
    fn score(&self, x: &[f32]) -> f32;
    /// One online step with the desired answer; returns whether the unit was wrong.
    fn learn(&mut self, x: &[f32], positive: bool) -> bool;
}

/// One binary unit per class, unit `c` trained to answer "is it class `c`?"; the prediction
/// is the class whose unit scores highest. This is how the classics run on multi-class data
/// (the lecture's "fields, class" CSV, the digits, MNIST).
///
/// ```
/// use ventral_models::classic::{OneVsRest, Perceptron};
///
/// // Three points on a line, three classes.
/// let xs = [-1.0, 0.0, 1.0];
/// let mut ovr = OneVsRest::new(3, |_| Perceptron::new(1, 0.1))?;
/// for _ in 0..50 {
///     ovr.epoch(&xs, &[0, 1, 2], None)?;
/// }
/// assert_eq!(ovr.predict(&[-1.0]), 0);
/// assert_eq!(ovr.predict(&[1.0]), 2);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OneVsRest<U> {
    /// Unit `c` answers "class `c` or not".
    pub units: Vec<U>,
}

impl<U: BinaryUnit> OneVsRest<U> {
    /// `classes` units made by `make(class)`.
    ///
    /// # Errors
    /// If `classes` is zero, `make` fails, or the units' input counts differ.
    pub fn new(classes: usize, make: impl FnMut(usize) -> Result<U>) -> Result<Self> {
        let units: Vec<U> = (0..classes).map(make).collect::<Result<_>>()?;
        let Some(first) = units.first() else {
            return Err(Error::config("OneVsRest", "needs at least one class"));
        };
        if units.iter().any(|u| u.inputs() != first.inputs()) {
            return Err(Error::config(
                "OneVsRest",
                "units have different input counts",
            ));
        }
        Ok(Self { units })
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.units[0].inputs()
    }

    /// The class whose unit scores highest (the first on ties).
    pub fn predict(&self, x: &[f32]) -> usize {
        let mut best = (0, f32::NEG_INFINITY);
        for (c, u) in self.units.iter().enumerate() {
            let s = u.score(x);
            if s > best.1 {
                best = (c, s);
            }
        }
        best.0
    }

    /// One online pass: each sample teaches every unit. Samples go in row order, or in an
    /// order shuffled by `shuffle_seed`. Returns the number of samples misclassified just
    /// before their step.
    ///
    /// # Errors
    /// If `xs` is not `labels.len()` rows of [`OneVsRest::inputs`] values or a label is not
    /// a class.
    pub fn epoch(
        &mut self,
        xs: &[f32],
        labels: &[usize],
        shuffle_seed: Option<u64>,
    ) -> Result<usize> {
        let d = self.inputs();
        let n = rows("OneVsRest", xs, d, labels.len())?;
        self.check_labels(labels)?;
        let order = shuffle_seed.map_or_else(|| (0..n).collect(), |s| shuffled(n, s));
        let mut mistakes = 0;
        for i in order {
            let x = &xs[i * d..][..d];
            mistakes += usize::from(self.predict(x) != labels[i]);
            for (c, u) in self.units.iter_mut().enumerate() {
                u.learn(x, c == labels[i]);
            }
        }
        Ok(mistakes)
    }

    /// The fraction of rows classified correctly.
    ///
    /// # Errors
    /// As [`OneVsRest::epoch`].
    pub fn accuracy(&self, xs: &[f32], labels: &[usize]) -> Result<f32> {
        let d = self.inputs();
        let n = rows("OneVsRest", xs, d, labels.len())?;
        self.check_labels(labels)?;
        let right = xs
            .chunks_exact(d)
            .zip(labels)
            .filter(|&(x, &l)| self.predict(x) == l)
            .count();
        Ok(right as f32 / n.max(1) as f32)
    }

    fn check_labels(&self, labels: &[usize]) -> Result<()> {
        match labels.iter().find(|&&l| l >= self.units.len()) {
            Some(bad) => Err(Error::config(
                "OneVsRest",
                format!("label {bad} for {} classes", self.units.len()),
            )),
            None => Ok(()),
        }
    }
}

/// The Mark I perceptron's "retina": an `h × w` grey image resampled to 20×20 = 400 values
/// (its camera had 400 photocells) by area averaging — each output cell is the mean of the
/// input it covers, fractional pixels weighted by overlap. MNIST's 28×28 becomes 20×20.
///
/// # Errors
/// If `image` does not hold `h · w` values or a size is zero.
pub fn mark_i_retina(image: &[f32], h: usize, w: usize) -> Result<Vec<f32>> {
    const SIDE: usize = 20;
    if h == 0 || w == 0 || image.len() != h * w {
        return Err(Error::config(
            "mark_i_retina",
            format!("{} values are not a {h}x{w} image", image.len()),
        ));
    }
    // Overlap of output cell `o` (of `n_out`) with input pixel `i` (of `n_in`), in input units.
    let weights = |n_in: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = n_in as f32 / SIDE as f32;
        (0..SIDE)
            .map(|o| {
                let (lo, hi) = (o as f32 * scale, (o + 1) as f32 * scale);
                (lo.floor() as usize..(hi.ceil() as usize).min(n_in))
                    .map(|i| (i, (hi.min(i as f32 + 1.0) - lo.max(i as f32)).max(0.0)))
                    .filter(|&(_, a)| a > 0.0)
                    .collect()
            })
            .collect()
    };
    let (rows_w, cols_w) = (weights(h), weights(w));
    let cell = (h as f32 / SIDE as f32) * (w as f32 / SIDE as f32);
    let mut out = Vec::with_capacity(SIDE * SIDE);
    for rw in &rows_w {
        for cw in &cols_w {
            let mut sum = 0.0;
            for &(i, a) in rw {
                for &(j, b) in cw {
                    sum += a * b * image[i * w + j];
                }
            }
            out.push(sum / cell);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::mark_i_retina;

    #[test]
    fn retina_keeps_a_constant_image_and_its_mass() {
        let out = mark_i_retina(&[0.25; 28 * 28], 28, 28).unwrap();
        assert_eq!(out.len(), 400);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-5));
        // A single lit pixel spreads its mass over the cells it touches: the total mass,
        // scaled by the area ratio 400 / 784, is kept.
        let mut img = vec![0.0; 28 * 28];
        img[13 * 28 + 17] = 1.0;
        let sum: f32 = mark_i_retina(&img, 28, 28).unwrap().iter().sum();
        assert!((sum - 400.0 / 784.0).abs() < 1e-5, "{sum}");
    }
}
