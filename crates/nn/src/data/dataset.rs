//! The [`Dataset`] trait and the in-memory dataset every reader produces.

use std::borrow::Cow;

use super::error::{DataError, Result};
use crate::rng::SplitMix64;

/// One sample: its values in `[C, H, W]` order (row-major), its shape and its class.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// `C·H·W` values, channel by channel, row by row. Borrowed from an in-memory dataset
    /// that stores `f32`, owned when converted from bytes or built on demand.
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

    /// Names channel `channel` for error messages: where it came from when the dataset
    /// knows (a CSV's file and column), else `channel N`.
    fn describe_channel(&self, channel: usize) -> String {
        format!("channel {channel}")
    }

    /// Writes sample `index`'s `C·H·W` values into `dst` and returns its label: how a
    /// [`DataLoader`](super::DataLoader) fills a batch. The default copies from
    /// [`get`](Self::get); a dataset that converts on the fly (as [`InMemoryDataset`] does
    /// from bytes) overrides it to write straight into `dst` without an intermediate vector.
    ///
    /// # Panics
    /// If `index >= self.len()`, if `dst.len()` is not `C·H·W`, or (default) if the sample's
    /// shape is not [`sample_shape`](Self::sample_shape).
    fn write_sample(&self, index: usize, dst: &mut [f32]) -> usize {
        let sample = self.get(index);
        let shape = self.sample_shape();
        assert_eq!(
            sample.shape, shape,
            "sample {index} has shape {:?}, the dataset's sample shape is {shape:?}",
            sample.shape
        );
        dst.copy_from_slice(&sample.data);
        sample.label
    }

    /// Writes sample `index` as a training epoch draws it: a dataset whose loading is itself
    /// random (an [`ImageFolder`](super::ImageFolder)'s random resized crop, done on the
    /// decoded image at its own size) draws from `rng`, the sample's own generator keyed by
    /// (seed, epoch, position). The default ignores `rng` and calls
    /// [`write_sample`](Self::write_sample).
    ///
    /// # Panics
    /// As [`write_sample`](Self::write_sample).
    fn write_sample_random(&self, index: usize, dst: &mut [f32], rng: &mut SplitMix64) -> usize {
        let _ = rng;
        self.write_sample(index, dst)
    }
}

/// A dataset held in memory: samples in NCHW order, one label per sample.
///
/// Values are stored compactly where the format allows it. The image readers
/// ([`load`](super::load), [`load_idx`](super::load_idx),
/// [`load_cifar10_files`](super::load_cifar10_files), [`read_digits_csv`](super::read_digits_csv))
/// keep the file's bytes as `u8` with a divisor (255, or 16 for digits) and convert to `f32`
/// only when a sample or batch is built, as `f32::from(byte) / divisor` — the very expression
/// the readers used to apply up front, so every value is bit-identical to an `f32` dataset of
/// the scaled pixels. That is 1 byte per value instead of 4: MNIST's 60,000 training images
/// take 47 MB rather than 188 MB. [`new`](Self::new) (and so [`read_csv`](super::read_csv))
/// stores `f32` values as given.
///
/// Equality compares the stored form: a `u8` dataset never equals an `f32` one, even with
/// the same values (compare [`to_f32`](Self::to_f32) for that).
#[derive(Debug, Clone, PartialEq)]
pub struct InMemoryDataset {
    shape: [usize; 3],
    storage: Storage,
    labels: Vec<usize>,
    num_classes: usize,
    class_names: Option<Vec<String>>,
    origin: Origin,
}

/// Where a dataset's channels came from, for messages; ignored by equality.
#[derive(Debug, Clone, Default)]
struct Origin(Option<(std::path::PathBuf, Option<Vec<String>>)>);

impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// How an [`InMemoryDataset`] holds its values.
#[derive(Debug, Clone, PartialEq)]
enum Storage {
    /// Bytes; value = `f32::from(byte) / divisor`.
    U8 { values: Vec<u8>, divisor: f32 },
    /// The values themselves.
    F32(Vec<f32>),
}

impl Storage {
    fn len(&self) -> usize {
        match self {
            Self::U8 { values, .. } => values.len(),
            Self::F32(values) => values.len(),
        }
    }

    /// Values `range` as `f32`: borrowed when stored so, converted otherwise.
    fn slice(&self, range: std::ops::Range<usize>) -> Cow<'_, [f32]> {
        match self {
            Self::U8 { values, divisor } => {
                let src = &values[range];
                let mut out = vec![0.0; src.len()];
                bytes_to_f32(src, *divisor, &mut out);
                Cow::Owned(out)
            }
            Self::F32(values) => Cow::Borrowed(&values[range]),
        }
    }

    /// Writes values `range` as `f32` into `dst` (of the same length).
    fn write(&self, range: std::ops::Range<usize>, dst: &mut [f32]) {
        match self {
            Self::U8 { values, divisor } => bytes_to_f32(&values[range], *divisor, dst),
            Self::F32(values) => dst.copy_from_slice(&values[range]),
        }
    }
}

/// `dst[i] = f32::from(src[i]) / divisor`: a division, not a multiplication by `1/divisor`,
/// which could round differently in the last bit.
fn bytes_to_f32(src: &[u8], divisor: f32, dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "sample length");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s) / divisor;
    }
}

impl InMemoryDataset {
    /// Builds a dataset from `labels.len()` samples of `shape` stored back to back in `data`,
    /// kept as `f32`.
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
        Self::build(shape, Storage::F32(data), labels, num_classes, class_names)
    }

    /// Builds a dataset whose values are bytes: value `k` is `f32::from(bytes[k]) / divisor`
    /// (`divisor` 255 maps pixels to `[0, 1]` as torchvision's `ToTensor`). One byte per
    /// value is held; the `f32`s are computed when samples are read.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `divisor` is not finite and positive, and for the reasons
    /// of [`new`](Self::new).
    pub fn from_u8(
        shape: [usize; 3],
        bytes: Vec<u8>,
        divisor: f32,
        labels: Vec<usize>,
        num_classes: usize,
        class_names: Option<Vec<String>>,
    ) -> Result<Self> {
        if !(divisor.is_finite() && divisor > 0.0) {
            return Err(DataError::Invalid(format!(
                "byte divisor {divisor} is not finite and positive"
            )));
        }
        Self::build(
            shape,
            Storage::U8 {
                values: bytes,
                divisor,
            },
            labels,
            num_classes,
            class_names,
        )
    }

    fn build(
        shape: [usize; 3],
        storage: Storage,
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
        if Some(storage.len()) != labels.len().checked_mul(per_sample) {
            return Err(DataError::Invalid(format!(
                "{} values do not make {} samples of shape {shape:?} ({per_sample} values each)",
                storage.len(),
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
            storage,
            labels,
            num_classes,
            class_names,
            origin: Origin::default(),
        })
    }

    /// Records that channel `c` is column `c + 1` of the file `path` (named `columns[c]`
    /// when the file has a header), for [`Dataset::describe_channel`].
    pub(crate) fn with_columns(
        mut self,
        path: &std::path::Path,
        columns: Option<Vec<String>>,
    ) -> Self {
        self.origin = Origin(Some((path.to_path_buf(), columns)));
        self
    }

    /// Values per sample, `C·H·W`.
    fn per_sample(&self) -> usize {
        self.shape.iter().product()
    }

    /// Sample `index`'s `C·H·W` values as `f32`: borrowed from `f32` storage, converted
    /// (a new vector) from bytes. To fill an existing buffer without allocating, use
    /// [`Dataset::write_sample`].
    ///
    /// # Panics
    /// If `index >= self.len()`, like slice indexing.
    pub fn sample(&self, index: usize) -> Cow<'_, [f32]> {
        let per_sample = self.per_sample();
        self.storage
            .slice(index * per_sample..(index + 1) * per_sample)
    }

    /// All sample values as `f32`, NCHW, `len() · C·H·W` of them: a copy (4 bytes per value
    /// whatever the storage), so prefer [`sample`](Self::sample) or a
    /// [`DataLoader`](super::DataLoader) for large datasets.
    pub fn to_f32(&self) -> Vec<f32> {
        self.storage.slice(0..self.storage.len()).into_owned()
    }

    /// The stored bytes and their divisor (value = `f32::from(byte) / divisor`), when the
    /// dataset holds bytes; `None` for `f32` storage.
    pub fn as_u8(&self) -> Option<(&[u8], f32)> {
        match &self.storage {
            Storage::U8 { values, divisor } => Some((values, *divisor)),
            Storage::F32(_) => None,
        }
    }

    /// The stored values when the dataset holds `f32`s (from [`new`](Self::new) or
    /// [`read_csv`](super::read_csv)); `None` for byte storage.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.storage {
            Storage::U8 { .. } => None,
            Storage::F32(values) => Some(values),
        }
    }

    /// The heap memory the dataset holds, in bytes: values, labels and class names (by
    /// capacity). MNIST's training set is about 47.5 MB (47 MB of pixels, 0.5 MB of labels).
    pub fn heap_bytes(&self) -> usize {
        let values = match &self.storage {
            Storage::U8 { values, .. } => values.capacity(),
            Storage::F32(values) => values.capacity() * size_of::<f32>(),
        };
        let names = self.class_names.as_ref().map_or(0, |names| {
            names.capacity() * size_of::<String>()
                + names.iter().map(String::capacity).sum::<usize>()
        });
        values + self.labels.capacity() * size_of::<usize>() + names
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
    ///
    /// Byte storage sums the same `f32` values as `f32` storage of the converted data would
    /// (each byte's value looked up in a 256-entry table), in the same order, so the result
    /// is identical to it bit for bit.
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let [channels, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        match &self.storage {
            Storage::U8 { values, divisor } => {
                let divisor = *divisor;
                let table: [f64; 256] =
                    std::array::from_fn(|b| f64::from(f32::from(b as u8) / divisor));
                accumulate(values, channels, plane, &mut sum, &mut sum_sq, |&b| {
                    table[usize::from(b)]
                });
            }
            Storage::F32(values) => {
                accumulate(values, channels, plane, &mut sum, &mut sum_sq, |&v| {
                    f64::from(v)
                });
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

    /// A new dataset holding the samples at `indices`, in that order (duplicates allowed),
    /// stored as this one is: how to carve a validation set out of a training set, or a
    /// test set out of a one-file dataset such as digits.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if an index is `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.labels.len()) {
            return Err(DataError::Invalid(format!(
                "subset index {i} is outside 0..{}",
                self.labels.len()
            )));
        }
        let per_sample = self.per_sample();
        let storage = match &self.storage {
            Storage::U8 { values, divisor } => Storage::U8 {
                values: gather(values, per_sample, indices),
                divisor: *divisor,
            },
            Storage::F32(values) => Storage::F32(gather(values, per_sample, indices)),
        };
        Ok(Self {
            shape: self.shape,
            storage,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
            origin: self.origin.clone(),
        })
    }
}

impl InMemoryDataset {
    /// The same samples with new `labels` (one per sample, each `< num_classes`) and class
    /// names: how [`select_classes`](Self::select_classes) relabels.
    pub(crate) fn relabelled(
        mut self,
        labels: Vec<usize>,
        num_classes: usize,
        class_names: Option<Vec<String>>,
    ) -> Self {
        debug_assert_eq!(labels.len(), self.labels.len());
        debug_assert!(labels.iter().all(|&l| l < num_classes));
        self.labels = labels;
        self.num_classes = num_classes;
        self.class_names = class_names;
        self
    }
}

/// Adds every value (as `f64`, by `to_f64`) to its channel's sum and sum of squares, sample
/// by sample, channel by channel, in storage order.
fn accumulate<T>(
    values: &[T],
    channels: usize,
    plane: usize,
    sum: &mut [f64],
    sum_sq: &mut [f64],
    to_f64: impl Fn(&T) -> f64,
) {
    for sample in values.chunks_exact(channels * plane) {
        for (c, plane_values) in sample.chunks_exact(plane).enumerate() {
            for v in plane_values {
                let v = to_f64(v);
                sum[c] += v;
                sum_sq[c] += v * v;
            }
        }
    }
}

/// The samples of `per_sample` values at `indices`, back to back.
fn gather<T: Copy>(values: &[T], per_sample: usize, indices: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(indices.len() * per_sample);
    for &i in indices {
        out.extend_from_slice(&values[i * per_sample..(i + 1) * per_sample]);
    }
    out
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
        Sample {
            data: self.sample(index),
            shape: self.shape,
            label: self.labels[index],
        }
    }

    fn describe_channel(&self, channel: usize) -> String {
        match &self.origin.0 {
            None => format!("channel {channel}"),
            Some((path, columns)) => {
                let name = columns
                    .as_ref()
                    .and_then(|c| c.get(channel))
                    .map(|n| format!(" ({n:?})"))
                    .unwrap_or_default();
                format!("{}: column {}{name}", path.display(), channel + 1)
            }
        }
    }

    /// Converts straight from the stored bytes (or copies the stored `f32`s) into `dst`.
    fn write_sample(&self, index: usize, dst: &mut [f32]) -> usize {
        let per_sample = self.per_sample();
        assert_eq!(
            dst.len(),
            per_sample,
            "write_sample: destination length for {:?}",
            self.shape
        );
        let label = self.labels[index];
        self.storage
            .write(index * per_sample..(index + 1) * per_sample, dst);
        label
    }
}
