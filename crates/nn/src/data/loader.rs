//! The [`DataLoader`]: batches, per-epoch shuffling, transforms, background preparation.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use super::dataset::Dataset;
use super::error::{DataError, Result};
use super::transform::{ColorJitter, Normalize, Pipeline, RandomResizedCrop};
use crate::rng::{Purpose, SplitMix64};

/// How many prepared batches the background thread may hold ready: enough to overlap data
/// preparation with a training step without holding much memory.
const PREFETCH_DEPTH: usize = 2;

/// Where batches are prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefetch {
    /// On the calling thread, when the iterator is advanced.
    #[default]
    Inline,
    /// On a background thread that keeps up to two batches ready, so preparing the next
    /// batch overlaps the caller's compute on the current one. The batches are bit-identical
    /// to [`Prefetch::Inline`]'s.
    Background,
    /// On `n` background threads (PyTorch's `num_workers`): thread `k` prepares batches
    /// `k, k + n, k + 2n, …` and keeps up to two of them ready, and the batches are handed
    /// out in order. At most `3n` batches exist at once (two queued and one in preparation
    /// per thread), whatever the dataset's size; each batch is a pure function of the
    /// loader's settings, so the batches are bit-identical to [`Prefetch::Inline`]'s
    /// whatever the threads' timing. `Workers(0)` and `Workers(1)` are
    /// [`Prefetch::Background`].
    Workers(usize),
}

/// One batch: `n` samples stacked in NCHW order, with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `n·C·H·W` values, contiguous, sample after sample.
    pub inputs: Vec<f32>,
    /// `[n, C, H, W]`.
    pub shape: [usize; 4],
    /// `n` class indices.
    pub labels: Vec<usize>,
    /// The dataset index of each sample.
    pub indices: Vec<usize>,
    /// This batch's number within its epoch, from 0.
    pub batch: usize,
}

/// Draws batches from a [`Dataset`], like PyTorch's `DataLoader`.
///
/// Each epoch visits every sample once (the last batch may be short unless
/// [`drop_last`](Self::drop_last)), in index order or, after [`shuffle`](Self::shuffle), in a
/// permutation that is a pure function of the seed and the epoch number: the same seed and
/// epoch give the same order in every run and with every [`Prefetch`] mode. Random
/// augmentations are likewise drawn per sample from (seed, epoch, position), so a batch's
/// bytes depend only on the configuration, the epoch and the batch number.
///
/// To checkpoint mid-epoch, save [`Batches::epoch`], [`Batches::order`] and
/// [`Batches::next_batch`], and continue with [`resume`](Self::resume).
///
/// ```
/// use ventral_nn::data::{DataLoader, InMemoryDataset, Prefetch};
///
/// // Six 1×2×2 images whose values are their index; labels alternate 0, 1.
/// let data: Vec<f32> = (0..6).flat_map(|i| [i as f32; 4]).collect();
/// let labels = vec![0, 1, 0, 1, 0, 1];
/// let dataset = InMemoryDataset::new([1, 2, 2], data, labels, 2, None)?;
/// let loader = DataLoader::new(dataset, 4)?.shuffle().seed(7).prefetch(Prefetch::Background);
/// let batches: Vec<_> = loader.epoch(0).collect();
/// assert_eq!(batches[0].shape, [4, 1, 2, 2]);
/// assert_eq!(batches[1].shape, [2, 1, 2, 2]); // the short last batch
/// # Ok::<(), ventral_nn::data::DataError>(())
/// ```
#[derive(Debug)]
pub struct DataLoader<D> {
    dataset: Arc<D>,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    drop_last: bool,
    pipeline: Pipeline,
    prefetch: Prefetch,
    shard: Shard,
}

/// Which part of every batch this loader makes: part `index` of `count` near-equal parts
/// (data-parallel training gives each process one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The positions `[lo, hi)` of this part within `[start, end)`: rows
    /// `⌊n·index/count⌋ .. ⌊n·(index+1)/count⌋` of the `n = end − start`.
    fn range(self, start: usize, end: usize) -> (usize, usize) {
        let n = end - start;
        (
            start + n * self.index / self.count,
            start + n * (self.index + 1) / self.count,
        )
    }
}

// Written out because `derive` would require `D: Clone`; the dataset is shared, not copied.
impl<D> Clone for DataLoader<D> {
    fn clone(&self) -> Self {
        Self {
            dataset: Arc::clone(&self.dataset),
            batch_size: self.batch_size,
            seed: self.seed,
            shuffle: self.shuffle,
            drop_last: self.drop_last,
            pipeline: self.pipeline.clone(),
            prefetch: self.prefetch,
            shard: self.shard,
        }
    }
}

impl<D: Dataset + Send + Sync + 'static> DataLoader<D> {
    /// A loader over `dataset` in batches of `batch_size`, in index order, seed 0, no
    /// transforms, keeping the short last batch, preparing batches inline.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `batch_size` is 0.
    pub fn new(dataset: impl Into<Arc<D>>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::Invalid("batch size 0".to_string()));
        }
        Ok(Self {
            dataset: dataset.into(),
            batch_size,
            seed: 0,
            shuffle: false,
            drop_last: false,
            pipeline: Pipeline::default(),
            prefetch: Prefetch::Inline,
            shard: Shard { index: 0, count: 1 },
        })
    }

    /// Shuffles each epoch with a permutation drawn from the seed and the epoch number.
    #[must_use]
    pub fn shuffle(mut self) -> Self {
        self.shuffle = true;
        self
    }

    /// Sets the seed of shuffling and augmentation (default 0).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drops the last batch of an epoch when it would be shorter than the batch size.
    #[must_use]
    pub fn drop_last(mut self) -> Self {
        self.drop_last = true;
        self
    }

    /// Randomly crops each image back to its size after padding it with `padding` zeros
    /// on every side (torchvision's `RandomCrop(size, padding)`; CIFAR training uses 4).
    #[must_use]
    pub fn random_crop(mut self, padding: usize) -> Self {
        self.pipeline.crop_padding = Some(padding);
        self
    }

    /// Mirrors each image left–right with probability ½ (torchvision's
    /// `RandomHorizontalFlip`).
    #[must_use]
    pub fn horizontal_flip(mut self) -> Self {
        self.pipeline.flip = true;
        self
    }

    /// Crops each image to a random box (area and aspect ratio drawn as torchvision's
    /// `RandomResizedCrop`) resized back to the image's size, before any other transform.
    /// (An [`ImageFolder`](super::ImageFolder) does this itself on the decoded image, at
    /// the image's own resolution.)
    #[must_use]
    pub fn random_resized_crop(mut self, crop: RandomResizedCrop) -> Self {
        self.pipeline.resized_crop = Some(crop);
        self
    }

    /// Jitters each image's brightness and contrast after the flip ([`ColorJitter`]).
    #[must_use]
    pub fn color_jitter(mut self, jitter: ColorJitter) -> Self {
        self.pipeline.jitter = Some(jitter);
        self
    }

    /// Normalises every sample per channel, `(x − mean[c]) / std[c]`, after augmentation.
    /// [`InMemoryDataset::channel_mean_std`](super::InMemoryDataset::channel_mean_std)
    /// computes both from a training set.
    ///
    /// # Errors
    /// [`DataError::ConstantFeature`] naming the channel (a CSV's file and column) when a
    /// standard deviation is 0; [`DataError::Invalid`] if the number of means or standard
    /// deviations is not the dataset's channel count, or for the reasons of
    /// [`Normalize::new`].
    pub fn normalize(mut self, mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if let Some(c) = std.iter().position(|&s| s == 0.0)
            && c < self.dataset.sample_shape()[0]
        {
            return Err(DataError::ConstantFeature {
                what: self.dataset.describe_channel(c),
                mean: mean.get(c).copied().unwrap_or(0.0),
            });
        }
        let normalize = Normalize::new(mean, std)?;
        let channels = self.dataset.sample_shape()[0];
        if normalize.channels() != channels {
            return Err(DataError::Invalid(format!(
                "normalize: {} channel statistics for samples of {channels} channels",
                normalize.channels()
            )));
        }
        self.pipeline.normalize = Some(normalize);
        Ok(self)
    }

    /// Makes each batch hold only part `index` of `count` of the whole batch: of a batch of
    /// `n` samples, the rows `⌊n·index/count⌋ .. ⌊n·(index+1)/count⌋` (so the parts of all
    /// `count` indices, concatenated in order, are the whole batch, and each part may be
    /// empty when `n < count`). Sample order, augmentation and batch numbers stay those of
    /// the whole batch: how each process of a data-parallel run loads just its share.
    ///
    /// ```
    /// use ventral_nn::data::{DataLoader, InMemoryDataset};
    ///
    /// let data: Vec<f32> = (0..6).flat_map(|i| [i as f32; 4]).collect();
    /// let dataset = InMemoryDataset::new([1, 2, 2], data, vec![0; 6], 2, None)?;
    /// let second = DataLoader::new(dataset, 4)?.shard(1, 2)?;
    /// let batches: Vec<_> = second.epoch(0).collect();
    /// assert_eq!(batches[0].indices, [2, 3]);
    /// assert_eq!(batches[1].indices, [5]);
    /// assert_eq!(second.batch_len(1), 2); // the whole last batch
    /// # Ok::<(), ventral_nn::data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::Invalid`] unless `index < count`.
    pub fn shard(mut self, index: usize, count: usize) -> Result<Self> {
        if index >= count {
            return Err(DataError::Invalid(format!(
                "shard {index} of {count}: the index must be below the count"
            )));
        }
        self.shard = Shard { index, count };
        Ok(self)
    }

    /// Chooses where batches are prepared (default [`Prefetch::Inline`]).
    #[must_use]
    pub fn prefetch(mut self, prefetch: Prefetch) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// The dataset batches are drawn from.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of samples in the whole batch `batch` (of every shard together): the batch
    /// size, or less for a short last batch; 0 past the epoch's end.
    pub fn batch_len(&self, batch: usize) -> usize {
        if batch >= self.num_batches() {
            return 0;
        }
        let len = self.dataset.len();
        self.batch_size.min(len - batch * self.batch_size)
    }

    /// Batches per epoch: `len / batch_size`, rounded up unless dropping the last.
    pub fn num_batches(&self) -> usize {
        let len = self.dataset.len();
        if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }

    /// The order in which `epoch` visits the dataset: `order[p]` is the index of the sample
    /// at position `p`. Index order without shuffling; otherwise a Fisher–Yates permutation
    /// from a SplitMix64 generator keyed by (seed, epoch), stable across builds and versions.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            SplitMix64::stream(self.seed, Purpose::Shuffle, &[epoch]).shuffle(&mut order);
        }
        order
    }

    /// The batches of `epoch`, from its first.
    ///
    /// # Panics
    /// With [`Prefetch::Background`], if the operating system cannot start a thread.
    pub fn epoch(&self, epoch: u64) -> Batches {
        self.start(epoch, self.order(epoch), 0)
    }

    /// The batches of `epoch` from batch `next_batch` on, visiting samples in `order`: how a
    /// training run restored from a checkpoint continues exactly where it stopped.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `order` is not a permutation of `0..len` or `next_batch` is
    /// past the epoch's last batch.
    ///
    /// # Panics
    /// With [`Prefetch::Background`], if the operating system cannot start a thread.
    pub fn resume(&self, epoch: u64, order: Vec<usize>, next_batch: usize) -> Result<Batches> {
        let len = self.dataset.len();
        let mut seen = vec![false; len];
        let is_permutation = order.len() == len
            && order
                .iter()
                .all(|&i| i < len && !std::mem::replace(&mut seen[i], true));
        if !is_permutation {
            return Err(DataError::Invalid(format!(
                "resume: the saved order ({} entries) is not a permutation of 0..{len}",
                order.len()
            )));
        }
        if next_batch > self.num_batches() {
            return Err(DataError::Invalid(format!(
                "resume: batch {next_batch} is past the epoch's {} batches",
                self.num_batches()
            )));
        }
        Ok(self.start(epoch, order, next_batch))
    }

    fn start(&self, epoch: u64, order: Vec<usize>, next_batch: usize) -> Batches {
        let plan = Arc::new(Plan {
            dataset: Arc::clone(&self.dataset) as Arc<dyn Dataset + Send + Sync>,
            batch_size: self.batch_size,
            num_batches: self.num_batches(),
            seed: self.seed,
            epoch,
            order,
            pipeline: self.pipeline.clone(),
            shard: self.shard,
        });
        let threads = match self.prefetch {
            Prefetch::Inline => 0,
            Prefetch::Background => 1,
            Prefetch::Workers(n) => n.max(1),
        };
        let workers = (0..threads)
            .map(|k| Worker::spawn(Arc::clone(&plan), next_batch + k, threads))
            .collect();
        Batches {
            plan,
            next: next_batch,
            first: next_batch,
            workers,
        }
    }
}

/// Everything that determines an epoch's batches; shared with the background thread.
struct Plan {
    dataset: Arc<dyn Dataset + Send + Sync>,
    batch_size: usize,
    num_batches: usize,
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
    pipeline: Pipeline,
    shard: Shard,
}

impl Plan {
    /// Builds batch `batch`: a pure function of the plan, whichever thread calls it.
    fn make(&self, batch: usize) -> Batch {
        let shape = self.dataset.sample_shape();
        let per_sample = shape.iter().product::<usize>();
        let whole = batch * self.batch_size;
        let (start, end) = self
            .shard
            .range(whole, (whole + self.batch_size).min(self.order.len()));
        let n = end - start;
        let mut inputs = vec![0.0; n * per_sample];
        let mut labels = Vec::with_capacity(n);
        let indices = self.order[start..end].to_vec();
        // Working space of the transforms that need a copy of the sample (the crop), reused
        // by every sample of the batch.
        let mut scratch = Vec::new();
        for ((position, &index), dst) in (start..end)
            .zip(&indices)
            .zip(inputs.chunks_exact_mut(per_sample))
        {
            // Straight into the batch: a byte dataset converts here, with no per-sample vector.
            // The loading stream is apart from the pipeline's, so adding it changed no
            // augmentation of earlier versions.
            let mut load_rng = SplitMix64::stream(
                self.seed,
                Purpose::Augment,
                &[self.epoch, position as u64, 1],
            );
            labels.push(self.dataset.write_sample_random(index, dst, &mut load_rng));
            self.pipeline
                .run(dst, shape, self.seed, self.epoch, position, &mut scratch);
        }
        let [c, h, w] = shape;
        Batch {
            inputs,
            shape: [n, c, h, w],
            labels,
            indices,
            batch,
        }
    }
}

/// A background thread and the bounded channel it fills.
struct Worker {
    receiver: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// A thread making batches `first, first + step, …` of the plan.
    fn spawn(plan: Arc<Plan>, first: usize, step: usize) -> Self {
        let (sender, receiver) = sync_channel(PREFETCH_DEPTH);
        let handle = std::thread::Builder::new()
            .name("ventral-data".to_string())
            .spawn(move || {
                for batch in (first..plan.num_batches).step_by(step) {
                    // The receiver is gone: the epoch was abandoned.
                    if sender.send(plan.make(batch)).is_err() {
                        break;
                    }
                }
            })
            .expect("cannot spawn the data loader's background thread");
        Self {
            receiver: Some(receiver),
            handle: Some(handle),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropping the receiver first makes a blocked `send` fail, so the join cannot hang.
        drop(self.receiver.take());
        if let Some(handle) = self.handle.take() {
            // A panic there was already reported to the consumer by `Batches::next`.
            let _ = handle.join();
        }
    }
}

/// The batches of one epoch, in order; from [`DataLoader::epoch`] or [`DataLoader::resume`].
///
/// Dropping it early stops the background thread, if any.
pub struct Batches {
    plan: Arc<Plan>,
    next: usize,
    /// The batch the workers started from: batch `b` comes from worker `(b − first) % n`.
    first: usize,
    /// The background threads (none when preparing inline).
    workers: Vec<Worker>,
}

impl Batches {
    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.plan.epoch
    }

    /// The epoch's visiting order (save it with a checkpoint).
    pub fn order(&self) -> &[usize] {
        &self.plan.order
    }

    /// The number of the batch the next call to `next` returns (save it with a checkpoint).
    pub fn next_batch(&self) -> usize {
        self.next
    }
}

impl Iterator for Batches {
    type Item = Batch;

    /// The next batch.
    ///
    /// # Panics
    /// If the dataset panicked while preparing it (re-raised from the background thread).
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.plan.num_batches {
            return None;
        }
        let count = self.workers.len();
        let batch = match self
            .workers
            .get_mut((self.next - self.first) % count.max(1))
        {
            None => self.plan.make(self.next),
            Some(worker) => {
                let received = worker.receiver.as_ref().and_then(|r| r.recv().ok());
                match received {
                    Some(batch) => batch,
                    // The thread ended before the epoch did: it panicked. Re-raise it here.
                    None => match worker.handle.take().map(JoinHandle::join) {
                        Some(Err(panic)) => std::panic::resume_unwind(panic),
                        _ => panic!("the data loader's background thread stopped early"),
                    },
                }
            }
        };
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.num_batches.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches {}
