//! The [`Dataset`] trait and the in-memory dataset every reader produces.

use std::borrow::Cow;

use super::error::{DataError, Result};

/// One sample: its values in `[C, H, W]` order (row-major), its shape and its class.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// `C·H·W` values, channel by channel, row by row. Borrowed from an in-memory dataset,
    /// owned when a dataset builds samples on demand.
    pub data: Cow<'a, [f32]>,
    /// `[C, H, W]`. Tabular rows of `F` features are `[F, 1, 1]`.
    pub shape: [usize; 3],
    /// The class index, in `0..num_classes`.
    pub label: usize,
}

/// A finite, indexable collection of labelled samples of one shape: what a
/// [`DataLoader`](super::DataLoader) draws batches from (PyTorch's map-style `Dataset`).
///
/// Every sample has the same `[C, H, W]` shape so that batches are contiguous NCHW arrays.
pub trait Dataset {
    /// The number of samples.
    fn len(&self) -> usize;

    /// `true` when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `[C, H, W]` shape shared by every sample.
    fn sample_shape(&self) -> [usize; 3];

    /// The number of classes; every label is below it.
    fn num_classes(&self) -> usize;

    /// Sample `index`.
    ///
    /// # Panics
    /// If `index >= self.len()`, like slice indexing.
    fn get(&self, index: usize) -> Sample<'_>;
}

/// A dataset held in memory: images as `f32` in NCHW order, one label per image.
///
/// The readers ([`load`](super::load) and the per-format functions) scale image pixels to
/// `[0, 1]`; tabular CSV features are kept as written.
#[derive(Debug, Clone, PartialEq)]
pub struct InMemoryDataset {
    shape: [usize; 3],
    data: Vec<f32>,
    labels: Vec<usize>,
    num_classes: usize,
    class_names: Option<Vec<String>>,
}

impl InMemoryDataset {
    /// Builds a dataset from `labels.len()` samples of `shape` stored back to back in `data`.
    ///
    /// `class_names`, when given, names each class index (`class_names[3]` is class 3).
    ///
    /// # Errors
    /// [`DataError::Invalid`] if a dimension of `shape` is zero, `data.len()` is not
    /// `labels.len() · C·H·W`, a label is `>= num_classes`, or `class_names` does not have
    /// `num_classes` entries.
    pub fn new(
        shape: [usize; 3],
        data: Vec<f32>,
        labels: Vec<usize>,
        num_classes: usize,
        class_names: Option<Vec<String>>,
    ) -> Result<Self> {
        if shape.contains(&0) {
            return Err(DataError::Invalid(format!(
                "sample shape {shape:?} has a zero dimension"
            )));
        }
        let per_sample = shape.iter().product::<usize>();
        if Some(data.len()) != labels.len().checked_mul(per_sample) {
            return Err(DataError::Invalid(format!(
                "{} values do not make {} samples of shape {shape:?} ({per_sample} values each)",
                data.len(),
                labels.len()
            )));
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= num_classes) {
            return Err(DataError::Invalid(format!(
                "label {label} of sample {index} is outside 0..{num_classes}"
            )));
        }
        if let Some(names) = &class_names
            && names.len() != num_classes
        {
            return Err(DataError::Invalid(format!(
                "{} class names for {num_classes} classes",
                names.len()
            )));
        }
        Ok(Self {
            shape,
            data,
            labels,
            num_classes,
            class_names,
        })
    }

    /// All sample values, NCHW, `len() · C·H·W` of them.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All labels, one per sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The class names, when the format defines them (`class_names()[label]`).
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// How many samples each class has: `histogram[c]` counts label `c`.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut histogram = vec![0; self.num_classes];
        for &label in &self.labels {
            histogram[label] += 1;
        }
        histogram
    }

    /// Per-channel mean and (population) standard deviation over the whole dataset, for
    /// [`DataLoader::normalize`](super::DataLoader::normalize). Accumulated in `f64` so the
    /// result does not depend on summation order at `f32` precision.
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let [channels, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        for sample in self.data.chunks_exact(channels * plane) {
            for (c, values) in sample.chunks_exact(plane).enumerate() {
                for &v in values {
                    sum[c] += f64::from(v);
                    sum_sq[c] += f64::from(v) * f64::from(v);
                }
            }
        }
        let count = (self.labels.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| (sq / count - m * m).max(0.0).sqrt() as f32)
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// A new dataset holding the samples at `indices`, in that order (duplicates allowed):
    /// how to carve a validation set out of a training set, or a test set out of a
    /// one-file dataset such as digits.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if an index is `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let per_sample = self.shape.iter().product::<usize>();
        let mut data = Vec::with_capacity(indices.len() * per_sample);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.labels.len() {
                return Err(DataError::Invalid(format!(
                    "subset index {i} is outside 0..{}",
                    self.labels.len()
                )));
            }
            data.extend_from_slice(&self.data[i * per_sample..(i + 1) * per_sample]);
            labels.push(self.labels[i]);
        }
        Ok(Self {
            shape: self.shape,
            data,
            labels,
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
        })
    }
}

impl Dataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn get(&self, index: usize) -> Sample<'_> {
        let per_sample = self.shape.iter().product::<usize>();
        Sample {
            data: Cow::Borrowed(&self.data[index * per_sample..(index + 1) * per_sample]),
            shape: self.shape,
            label: self.labels[index],
        }
    }
}
