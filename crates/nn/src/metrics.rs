//! Classification metrics whose memory grows with the classes and samples seen, never with
//! the square of the class count.

use std::collections::BTreeMap;

/// A confusion matrix `counts[true][predicted]`, stored sparsely: per-class totals and hits
/// in two vectors of `classes` entries, and only the (true, predicted) pairs that occurred.
///
/// A dense `classes × classes` matrix of 65,536 classes is 34 GB; this is at most
/// `16·classes` bytes plus one entry per distinct pair seen (at most one per sample).
///
/// ```
/// use ventral_nn::metrics::Confusion;
///
/// let mut c = Confusion::new(3);
/// c.add(0, 0);
/// c.add(0, 2);
/// c.add(2, 2);
/// assert_eq!(c.count(0, 2), 1);
/// assert_eq!(c.class_accuracy(0), 0.5);
/// assert_eq!(c.dense(), vec![vec![1, 0, 1], vec![0, 0, 0], vec![0, 0, 1]]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confusion {
    totals: Vec<u64>,
    hits: Vec<u64>,
    pairs: BTreeMap<(usize, usize), u64>,
}

impl Confusion {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            totals: vec![0; classes],
            hits: vec![0; classes],
            pairs: BTreeMap::new(),
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.totals.len()
    }

    /// Counts one sample of class `label` predicted as `predicted`.
    ///
    /// # Panics
    /// If either is not below [`classes`](Self::classes), like indexing.
    pub fn add(&mut self, label: usize, predicted: usize) {
        assert!(
            predicted < self.classes(),
            "predicted class {predicted} is outside 0..{}",
            self.classes()
        );
        self.totals[label] += 1;
        if label == predicted {
            self.hits[label] += 1;
        }
        *self.pairs.entry((label, predicted)).or_insert(0) += 1;
    }

    /// Samples of class `label` predicted as `predicted`.
    pub fn count(&self, label: usize, predicted: usize) -> u64 {
        self.pairs.get(&(label, predicted)).copied().unwrap_or(0)
    }

    /// Samples of class `label`.
    pub fn total(&self, label: usize) -> u64 {
        self.totals[label]
    }

    /// The fraction of class `label`'s samples predicted correctly (0 when it has none).
    pub fn class_accuracy(&self, label: usize) -> f64 {
        self.hits[label] as f64 / self.totals[label].max(1) as f64
    }

    /// The pairs that occurred, `((true, predicted), count)`, in row-major order.
    pub fn nonzero(&self) -> impl Iterator<Item = ((usize, usize), u64)> + '_ {
        self.pairs.iter().map(|(&k, &v)| (k, v))
    }

    /// The dense matrix `[true][predicted]`: `classes²` entries, for tables and plots of a
    /// few classes only.
    pub fn dense(&self) -> Vec<Vec<u64>> {
        let n = self.classes();
        let mut rows = vec![vec![0; n]; n];
        for ((t, p), v) in self.nonzero() {
            rows[t][p] = v;
        }
        rows
    }
}
