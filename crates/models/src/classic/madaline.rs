//! Madaline ("many Adalines") trained by Madaline Rule I.

use ventral_nn::{Error, Init, Result};

use super::{Adaline, FitReport, rows};

/// A layer of [`Adaline`]s whose `±1` outputs feed a fixed majority-vote unit, trained by
/// Madaline Rule I (Ridgway 1962; Widrow & Lehr 1990): when the vote is wrong, adapt the
/// fewest Adalines needed to change it — those voting wrongly whose linear outputs are
/// closest to zero ("minimal disturbance") — each by one normalised LMS step towards the
/// desired response, `w ← w + α(d − s)·x / (1 + |x|²)` (the `1` is the bias input), which with
/// `α = 1` moves `s` exactly onto `d`. When the vote is right, nothing changes.
///
/// Three Adalines can fit XOR (two lines cut the plane into the right regions and the third
/// breaks ties), which neither a perceptron nor a single Adaline can.
#[derive(Debug, Clone, PartialEq)]
pub struct Madaline {
    /// The hidden Adalines (an odd number, so the vote never ties).
    pub units: Vec<Adaline>,
    /// The normalised step `α`, in (0, 2).
    pub step_size: f32,
}

impl Madaline {
    /// `units` Adalines (odd) over `inputs` inputs, with small random weights from `seed`
    /// (random so the units start different) and normalised step `step_size`.
    ///
    /// # Errors
    /// If `units` is even or zero, `inputs` is zero, or `step_size` is not in (0, 2).
    pub fn new(inputs: usize, units: usize, step_size: f32, seed: u64) -> Result<Self> {
        if inputs == 0 || units.is_multiple_of(2) || !(step_size > 0.0 && step_size < 2.0) {
            return Err(Error::config(
                "Madaline",
                format!(
                    "needs inputs > 0, an odd number of units and a step in (0, 2), got \
                     {inputs}, {units}, {step_size}"
                ),
            ));
        }
        let init = &mut Init::new(seed);
        let units = (0..units)
            .map(|_| {
                let w = init.uniform(&[inputs + 1], 0.5)?.to_vec();
                Ok(Adaline {
                    weights: w[..inputs].to_vec(),
                    bias: w[inputs],
                    learning_rate: step_size,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { units, step_size })
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.units[0].inputs()
    }

    /// The vote margin: (Adalines voting +1) − (voting −1).
    pub fn margin(&self, x: &[f32]) -> i32 {
        self.units.iter().map(|u| u.predict(x) as i32).sum()
    }

    /// The majority vote, `+1` or `−1`.
    pub fn predict(&self, x: &[f32]) -> f32 {
        if self.margin(x) > 0 { 1.0 } else { -1.0 }
    }

    /// One Madaline Rule I step on `x` with desired output `target` (`±1`); returns whether
    /// the vote was wrong (and so Adalines were adapted).
    pub fn step(&mut self, x: &[f32], target: f32) -> bool {
        let d = if target > 0.0 { 1.0 } else { -1.0 };
        if self.predict(x) == d {
            return false;
        }
        // Votes for d needed for a majority, and the units voting against, nearest zero first.
        let majority = self.units.len() / 2 + 1;
        let agree = self.units.iter().filter(|u| u.predict(x) == d).count();
        let mut wrong: Vec<(f32, usize)> = self
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.predict(x) != d)
            .map(|(i, u)| (u.output(x).abs(), i))
            .collect();
        wrong.sort_by(|a, b| a.0.total_cmp(&b.0));
        let norm = 1.0 + x.iter().map(|v| v * v).sum::<f32>();
        for &(_, i) in wrong.iter().take(majority - agree) {
            let unit = &mut self.units[i];
            let error = d - unit.output(x);
            unit.nudge(x, self.step_size * error / norm);
        }
        true
    }

    /// One pass over the rows of `xs` in order; returns the number of wrong votes.
    ///
    /// # Errors
    /// If `xs` is not `targets.len()` rows of [`Madaline::inputs`] values.
    pub fn epoch(&mut self, xs: &[f32], targets: &[f32]) -> Result<usize> {
        let d = self.inputs();
        rows("Madaline", xs, d, targets.len())?;
        Ok(xs
            .chunks_exact(d)
            .zip(targets)
            .filter(|&(x, &t)| self.step(x, t))
            .count())
    }

    /// Passes over the data until an epoch makes no mistake, at most `max_epochs` times.
    ///
    /// # Errors
    /// As [`Madaline::epoch`].
    pub fn fit(&mut self, xs: &[f32], targets: &[f32], max_epochs: usize) -> Result<FitReport> {
        super::fit_epochs(max_epochs, || self.epoch(xs, targets))
    }
}

impl super::BinaryUnit for Madaline {
    fn inputs(&self) -> usize {
        self.units[0].inputs()
    }
    /// The vote margin, ties between equal margins broken by the summed linear outputs
    /// (squashed into (−½, ½), less than the margin's step of 2).
    fn score(&self, x: &[f32]) -> f32 {
        let linear: f32 = self.units.iter().map(|u| u.output(x)).sum();
        self.margin(x) as f32 + 0.5 * linear.tanh()
    }
    fn learn(&mut self, x: &[f32], positive: bool) -> bool {
        self.step(x, if positive { 1.0 } else { -1.0 })
    }
}
