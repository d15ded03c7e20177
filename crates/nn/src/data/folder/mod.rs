//! Image folders: `DIR/train/<class>/*.png|jpg` (and `DIR/val/…` or `DIR/test/…`), the
//! layout of torchvision's `ImageFolder`, read image by image as batches are made.
//!
//! Opening a folder lists its files and reads each file's header only (format and size,
//! checked against [`Limits::image_pixels`](crate::limits::Limits)); the pixels are decoded
//! when a sample is written, so memory holds the file list and the images being decoded,
//! whatever the dataset's size. Class names are the sorted names of the class folders;
//! files are taken in name order, and only `.png`, `.jpg` and `.jpeg` (any case) count as
//! images (hidden files and other names are ignored, as torchvision does).
//!
//! A file whose header cannot be read is skipped and reported ([`FolderReport`]), or is an
//! error with [`FolderOptions::strict`]. [`ImageFolder::verify`] decodes every image once
//! (on several threads, in a fixed order) to find files whose header is fine but whose
//! pixels are not, and to compute per-channel statistics for normalisation. An image that
//! still fails later (changed on disk) is written as a black sample and counted in
//! [`ImageFolder::failures`].
//!
//! Each sample is `[C, S, S]` (or the first image's size without [`FolderOptions::size`]):
//! for evaluation the centred square of the image resized to `S × S` (Pillow's bilinear
//! filter); for training with [`ImageFolder::random_resized_crop`] a random box of the image
//! at its own resolution, resized to `S × S`. Grey images become RGB by copying the grey
//! plane; RGB becomes grey by Pillow's integer BT.601 luma (`convert("L")`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

mod open;

pub use open::open_image_folder;

use super::dataset::{Dataset, Sample};
use super::error::{DataError, Result};
use super::image::{Pixels, read_pixels};
use super::resize::{CropBox, crop_resize};
use super::transform::RandomResizedCrop;
use crate::rng::SplitMix64;

/// How many unreadable files a [`LoadFailures`] names (it counts them all).
const NAMED_FAILURES: usize = 5;

/// Images per unit of work of [`ImageFolder::verify`]: statistics are summed per block in
/// file order and blocks are added in order, so the result does not depend on the threads.
const VERIFY_BLOCK: usize = 64;

/// How to open an image folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderOptions {
    /// Channels of every sample: 1 (grey) or 3 (RGB), whatever the files hold.
    pub channels: usize,
    /// Samples are `size × size`; `None`: the size of the first training image.
    pub size: Option<usize>,
    /// Make an unreadable image an error instead of skipping it.
    pub strict: bool,
    /// Without a `val/` or `test/` folder, hold out this fraction of `train/` (chosen at
    /// random from `seed`) as the validation set.
    pub val_split: Option<f64>,
    /// The seed of the validation split.
    pub seed: u64,
}

/// What opening a folder found besides the images it kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderReport {
    /// Files skipped, with why (every one of them).
    pub skipped: Vec<(PathBuf, String)>,
    /// Files ignored for their names (not `.png`, `.jpg` or `.jpeg`).
    pub ignored: usize,
    /// Where the validation set came from: `val/`, `test/`, or the split of `train/`.
    pub validation: String,
}

/// Images that failed to decode while batches were made (written as black samples).
#[derive(Debug, Default)]
pub struct LoadFailures {
    count: AtomicUsize,
    first: Mutex<Vec<String>>,
}

impl LoadFailures {
    fn record(&self, error: &DataError) {
        if self.count.fetch_add(1, Ordering::Relaxed) < NAMED_FAILURES
            && let Ok(mut first) = self.first.lock()
        {
            first.push(error.to_string());
        }
    }

    /// How many samples could not be decoded.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The errors of the first few, one line each.
    pub fn first(&self) -> Vec<String> {
        self.first.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// How a sample's box is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Crop {
    /// The centred box of the sample's aspect ratio.
    Centre,
    /// A random resized crop, drawn per sample and epoch.
    Random(RandomResizedCrop),
}

/// A dataset of image files with one class folder per class (torchvision's `ImageFolder`),
/// decoded when its samples are written.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    dir: PathBuf,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    class_names: Vec<String>,
    shape: [usize; 3],
    crop: Crop,
    strict: bool,
    failures: Arc<LoadFailures>,
}

/// Per-channel statistics of the images an [`ImageFolder::verify`] pass decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// Mean of each channel over every pixel of every sample.
    pub mean: Vec<f32>,
    /// Population standard deviation of each channel.
    pub std: Vec<f32>,
}

/// Sums of one block of samples: per channel Σx and Σx², and the files that failed.
struct BlockSums {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    samples: usize,
    failed: Vec<(usize, DataError)>,
}

impl ImageFolder {
    /// Training samples: each epoch draws a random resized crop of every image (at the
    /// image's own resolution, then resized to the sample size) instead of its centre.
    #[must_use]
    pub fn random_resized_crop(mut self, crop: RandomResizedCrop) -> Self {
        self.crop = Crop::Random(crop);
        self
    }

    /// The same images as samples of `channels` channels (1 or 3).
    ///
    /// # Errors
    /// [`DataError::Invalid`] for another channel count.
    pub fn with_channels(mut self, channels: usize) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(DataError::Invalid(format!(
                "image folder: {channels} channels (need 1 or 3)"
            )));
        }
        self.shape[0] = channels;
        Ok(self)
    }

    /// The folder the images are in (`DIR/train`, `DIR/val`, …).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The image files, in sample order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The class names: the sorted names of `train/`'s class folders.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Images that failed to decode while samples were written.
    pub fn failures(&self) -> &LoadFailures {
        &self.failures
    }

    /// Decodes every image once, on `threads` threads (at least 1), as evaluation would
    /// (centre box): removes the images that fail (returned with their errors, in file order)
    /// or, when strict, returns the first failure as the error; and returns the per-channel
    /// mean and standard deviation of the rest, summed in `f64` per block of 64 images in
    /// file order, so the result is the same for any number of threads.
    ///
    /// # Errors
    /// With `strict`, the error of the first (in file order) image that cannot be decoded;
    /// [`DataError::Folder`] if no image decodes.
    pub fn verify(&mut self, threads: usize) -> Result<(ChannelStats, Vec<(PathBuf, String)>)> {
        let blocks = self.files.len().div_ceil(VERIFY_BLOCK);
        let threads = threads.clamp(1, blocks.max(1));
        let this = &*self;
        let mut results: Vec<(usize, BlockSums)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    scope.spawn(move || {
                        (k..blocks)
                            .step_by(threads)
                            .map(|b| (b, this.block_sums(b)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        results.sort_by_key(|(b, _)| *b);
        let channels = self.shape[0];
        let (mut sum, mut sum_sq) = (vec![0f64; channels], vec![0f64; channels]);
        let mut samples = 0;
        let mut failed = Vec::new();
        for (_, block) in results {
            for c in 0..channels {
                sum[c] += block.sum[c];
                sum_sq[c] += block.sum_sq[c];
            }
            samples += block.samples;
            failed.extend(block.failed);
        }
        if self.strict && !failed.is_empty() {
            return Err(failed.swap_remove(0).1);
        }
        if samples == 0 {
            return Err(DataError::Folder {
                dir: self.dir.clone(),
                what: "no image could be decoded".to_string(),
            });
        }
        let mut keep = vec![true; self.files.len()];
        let skipped: Vec<(PathBuf, String)> = failed
            .into_iter()
            .map(|(i, e)| {
                keep[i] = false;
                (self.files[i].clone(), e.to_string())
            })
            .collect();
        let mut kept = keep.iter();
        self.files.retain(|_| *kept.next().unwrap_or(&true));
        let mut kept = keep.iter();
        self.labels.retain(|_| *kept.next().unwrap_or(&true));
        let count = (samples * self.shape[1] * self.shape[2]) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| (sq / count - m * m).max(0.0).sqrt() as f32)
            .collect();
        let stats = ChannelStats {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        };
        Ok((stats, skipped))
    }

    /// Decodes block `b` of [`verify`](Self::verify).
    fn block_sums(&self, b: usize) -> BlockSums {
        let channels = self.shape[0];
        let per_sample = self.shape.iter().product::<usize>();
        let plane = self.shape[1] * self.shape[2];
        let mut out = BlockSums {
            sum: vec![0.0; channels],
            sum_sq: vec![0.0; channels],
            samples: 0,
            failed: Vec::new(),
        };
        let mut dst = vec![0.0f32; per_sample];
        let end = ((b + 1) * VERIFY_BLOCK).min(self.files.len());
        for i in b * VERIFY_BLOCK..end {
            match self.load(i, &mut dst, None) {
                Ok(()) => {
                    for (c, values) in dst.chunks_exact(plane).enumerate() {
                        for &v in values {
                            let v = f64::from(v);
                            out.sum[c] += v;
                            out.sum_sq[c] += v * v;
                        }
                    }
                    out.samples += 1;
                }
                Err(e) => out.failed.push((i, e)),
            }
        }
        out
    }

    /// Decodes image `index` into `dst` as `[C, S, S]`; `rng` draws the random resized crop
    /// when there is one (training), else the centre box is taken.
    fn load(&self, index: usize, dst: &mut [f32], rng: Option<&mut SplitMix64>) -> Result<()> {
        let pixels = read_pixels(&self.files[index])?;
        let [channels, out_h, out_w] = self.shape;
        let (h, w) = (pixels.height, pixels.width);
        let crop = match (self.crop, rng) {
            (Crop::Random(rrc), Some(rng)) => rrc.sample(h, w, rng),
            _ => CropBox::centre(h, w, out_h, out_w),
        };
        let whole = CropBox {
            top: 0,
            left: 0,
            height: h,
            width: w,
        };
        if crop == whole && (h, w) == (out_h, out_w) {
            // The image is the sample: straight into the batch (crop_resize would copy it
            // twice to the same values).
            to_planes(&pixels, channels, dst);
        } else {
            let mut planes = vec![0.0; channels * h * w];
            to_planes(&pixels, channels, &mut planes);
            crop_resize(&planes, [channels, h, w], crop, out_h, out_w, dst);
        }
        Ok(())
    }

    /// A dataset of the samples at `indices`, in that order.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if an index is `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.files.len()) {
            return Err(DataError::Invalid(format!(
                "subset index {i} is outside 0..{}",
                self.files.len()
            )));
        }
        Ok(Self {
            files: indices.iter().map(|&i| self.files[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.clone()
        })
    }

    /// Each class's number of samples.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    fn write(&self, index: usize, dst: &mut [f32], rng: Option<&mut SplitMix64>) -> usize {
        if let Err(e) = self.load(index, dst, rng) {
            dst.fill(0.0);
            self.failures.record(&e);
        }
        self.labels[index]
    }
}

/// Writes the image's bytes into `out` as `channels` planes of `f32` in `[0, 1]`: grey
/// copied to every plane, or RGB reduced to Pillow's integer BT.601 luma
/// `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`.
fn to_planes(pixels: &Pixels, channels: usize, out: &mut [f32]) {
    let plane = pixels.width * pixels.height;
    assert_eq!(out.len(), channels * plane, "to_planes: destination length");
    let value = |b: u8| f32::from(b) / 255.0;
    match (pixels.channels, channels) {
        (1, _) => {
            for dst in out.chunks_exact_mut(plane) {
                for (d, &b) in dst.iter_mut().zip(&pixels.data) {
                    *d = value(b);
                }
            }
        }
        (_, 1) => {
            for (d, px) in out.iter_mut().zip(pixels.data.chunks_exact(3)) {
                let luma = (19595 * u32::from(px[0])
                    + 38470 * u32::from(px[1])
                    + 7471 * u32::from(px[2])
                    + 0x8000)
                    >> 16;
                *d = value(luma.min(255) as u8);
            }
        }
        _ => {
            for (c, dst) in out.chunks_exact_mut(plane).enumerate() {
                for (d, px) in dst.iter_mut().zip(pixels.data.chunks_exact(3)) {
                    *d = value(px[c]);
                }
            }
        }
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Decodes the image (centre box); a failure gives a black sample, counted in
    /// [`ImageFolder::failures`].
    fn get(&self, index: usize) -> Sample<'_> {
        let mut data = vec![0.0; self.shape.iter().product()];
        let label = self.write(index, &mut data, None);
        Sample {
            data: data.into(),
            shape: self.shape,
            label,
        }
    }

    fn write_sample(&self, index: usize, dst: &mut [f32]) -> usize {
        self.write(index, dst, None)
    }

    fn write_sample_random(&self, index: usize, dst: &mut [f32], rng: &mut SplitMix64) -> usize {
        self.write(index, dst, Some(rng))
    }
}
