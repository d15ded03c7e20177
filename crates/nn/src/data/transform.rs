//! Per-sample transforms: random resized crop, random crop with zero padding, horizontal
//! flip, colour jitter (brightness and contrast), normalisation.
//!
//! The [`DataLoader`](super::DataLoader) applies them in torchvision's usual order for
//! image training (`RandomResizedCrop → RandomCrop(padding) → RandomHorizontalFlip →
//! ColorJitter → ToTensor → Normalize`): crops, then flip, then jitter, then normalise. Padding is therefore zero in `[0, 1]` pixel space
//! (black), as torchvision pads the image before normalising. The building blocks are public
//! so that a test or a custom pipeline can apply them with chosen, non-random parameters.

use super::error::{DataError, Result};
use super::resize::{CropBox, crop_resize};
use crate::rng::{Purpose, SplitMix64};

/// Per-channel normalisation `x ↦ (x − mean[c]) / std[c]`, as torchvision's `Normalize`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// One mean and one standard deviation per channel.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if the lengths differ or are zero, a mean is not finite, or a
    /// standard deviation is not finite and positive (it is a divisor).
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::Invalid(format!(
                "normalize: {} means and {} standard deviations (need one of each per channel)",
                mean.len(),
                std.len()
            )));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::Invalid(format!(
                "normalize: mean {m} is not finite"
            )));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::Invalid(format!(
                "normalize: standard deviation {s} is not finite and positive"
            )));
        }
        Ok(Self { mean, std })
    }

    /// The number of channels it normalises.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Normalises one sample of `shape` = `[C, H, W]` in place.
    ///
    /// # Panics
    /// If `C` differs from [`channels`](Self::channels) or `sample.len() != C·H·W`.
    pub fn apply(&self, sample: &mut [f32], shape: [usize; 3]) {
        let [channels, h, w] = shape;
        assert_eq!(channels, self.channels(), "Normalize: channel count");
        assert_eq!(
            sample.len(),
            channels * h * w,
            "Normalize: sample length for {shape:?}"
        );
        for ((plane, &mean), &std) in sample
            .chunks_exact_mut(h * w)
            .zip(&self.mean)
            .zip(&self.std)
        {
            for v in plane {
                // Divide (not multiply by 1/std) to round exactly as PyTorch's `sub_().div_()`.
                *v = (*v - mean) / std;
            }
        }
    }
}

/// Writes into `dst` the `H×W` window at (`top`, `left`) of `src` padded by `padding` zeros
/// on every side: `dst[c][y][x] = src[c][y + top − padding][x + left − padding]`, or 0 where
/// that falls in the padding. `top` and `left` range over `0..=2·padding`; `top = left =
/// padding` is the identity. This is torchvision's `RandomCrop(size = (H, W), padding)`
/// with the offsets given.
///
/// # Panics
/// If `src` or `dst` is not `C·H·W` long, or `top` or `left` exceeds `2·padding`.
pub fn crop_padded(
    src: &[f32],
    shape: [usize; 3],
    padding: usize,
    top: usize,
    left: usize,
    dst: &mut [f32],
) {
    let [channels, h, w] = shape;
    assert_eq!(
        src.len(),
        channels * h * w,
        "crop_padded: source length for {shape:?}"
    );
    assert_eq!(dst.len(), src.len(), "crop_padded: destination length");
    assert!(
        top <= 2 * padding && left <= 2 * padding,
        "crop_padded: offset beyond padding"
    );
    for (src_plane, dst_plane) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
        for (y, dst_row) in dst_plane.chunks_exact_mut(w).enumerate() {
            // Source row y + top − padding, if it is inside the image.
            let sy = (y + top).checked_sub(padding).filter(|&sy| sy < h);
            for (x, out) in dst_row.iter_mut().enumerate() {
                let sx = (x + left).checked_sub(padding).filter(|&sx| sx < w);
                *out = match (sy, sx) {
                    (Some(sy), Some(sx)) => src_plane[sy * w + sx],
                    _ => 0.0,
                };
            }
        }
    }
}

/// Mirrors every row of a `[C, H, W]` sample in place: `x ↦ W − 1 − x`.
///
/// # Panics
/// If `sample.len() != C·H·W`.
pub fn flip_horizontal(sample: &mut [f32], shape: [usize; 3]) {
    let [channels, h, w] = shape;
    assert_eq!(
        sample.len(),
        channels * h * w,
        "flip_horizontal: sample length for {shape:?}"
    );
    for row in sample.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// torchvision's `RandomResizedCrop`: a box of random area (a fraction in `scale` of the
/// image's) and aspect ratio (log-uniform in `ratio`), resized to the output size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    /// The range of the box's area as a fraction of the image's (torchvision: 0.08 to 1).
    pub scale: (f64, f64),
    /// The range of the box's width / height (torchvision: 3/4 to 4/3).
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    /// torchvision's defaults: `scale = (0.08, 1)`, `ratio = (3/4, 4/3)`.
    fn default() -> Self {
        Self {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl RandomResizedCrop {
    /// Draws the box for an `h × w` image, as torchvision's `RandomResizedCrop.get_params`:
    /// up to ten tries of an area `u(scale)·h·w` and a ratio `exp(u(log ratio))`, sides
    /// rounded, kept when the box fits, placed uniformly; else the centre box of the
    /// nearest allowed ratio. Draws: area, ratio (each try), top, left.
    pub fn sample(&self, h: usize, w: usize, rng: &mut SplitMix64) -> CropBox {
        let area = (h * w) as f64;
        let (lo, hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * (self.scale.0 + (self.scale.1 - self.scale.0) * rng.next_f64());
            let aspect = (lo + (hi - lo) * rng.next_f64()).exp();
            let bw = (target * aspect).sqrt().round() as usize;
            let bh = (target / aspect).sqrt().round() as usize;
            if (1..=w).contains(&bw) && (1..=h).contains(&bh) {
                let top = rng.below((h - bh + 1) as u64) as usize;
                let left = rng.below((w - bw + 1) as u64) as usize;
                return CropBox {
                    top,
                    left,
                    height: bh,
                    width: bw,
                };
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (bh, bw) = if in_ratio < self.ratio.0 {
            (((w as f64 / self.ratio.0).round() as usize).clamp(1, h), w)
        } else if in_ratio > self.ratio.1 {
            (h, ((h as f64 * self.ratio.1).round() as usize).clamp(1, w))
        } else {
            (h, w)
        };
        CropBox {
            top: (h - bh) / 2,
            left: (w - bw) / 2,
            height: bh,
            width: bw,
        }
    }
}

/// torchvision's `ColorJitter(brightness, contrast)` on values in `[0, 1]`: brightness
/// multiplies every value by a factor uniform in `[max(0, 1 − b), 1 + b]`; contrast blends
/// every value with the image's mean grey level (BT.601 luma for RGB) by a factor uniform
/// in `[max(0, 1 − c), 1 + c]`; both clamp to `[0, 1]`. Unlike torchvision, which shuffles
/// the order of its adjustments, brightness always comes first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    brightness: f32,
    contrast: f32,
}

impl ColorJitter {
    /// Jitter of strength `brightness` and `contrast` (0 turns one off).
    ///
    /// # Errors
    /// [`DataError::Invalid`] unless both are finite and non-negative.
    pub fn new(brightness: f32, contrast: f32) -> Result<Self> {
        for (name, v) in [("brightness", brightness), ("contrast", contrast)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DataError::Invalid(format!(
                    "color jitter: {name} {v} is not a finite number >= 0"
                )));
            }
        }
        Ok(Self {
            brightness,
            contrast,
        })
    }

    /// A factor uniform in `[max(0, 1 − s), 1 + s]`.
    fn factor(strength: f32, rng: &mut SplitMix64) -> f32 {
        let lo = (1.0 - f64::from(strength)).max(0.0);
        let hi = 1.0 + f64::from(strength);
        (lo + (hi - lo) * rng.next_f64()) as f32
    }

    /// Jitters one `[C, H, W]` sample in place; draws the brightness factor (if `b > 0`),
    /// then the contrast factor (if `c > 0`).
    pub fn apply(&self, sample: &mut [f32], shape: [usize; 3], rng: &mut SplitMix64) {
        if self.brightness > 0.0 {
            let f = Self::factor(self.brightness, rng);
            for v in sample.iter_mut() {
                *v = (*v * f).clamp(0.0, 1.0);
            }
        }
        if self.contrast > 0.0 {
            let f = Self::factor(self.contrast, rng);
            let [channels, h, w] = shape;
            let plane = h * w;
            let mean = if channels == 3 {
                let (r, rest) = sample.split_at(plane);
                let (g, b) = rest.split_at(plane);
                let sum: f64 = (0..plane)
                    .map(|i| {
                        0.299 * f64::from(r[i]) + 0.587 * f64::from(g[i]) + 0.114 * f64::from(b[i])
                    })
                    .sum();
                (sum / plane as f64) as f32
            } else {
                (sample.iter().map(|&v| f64::from(v)).sum::<f64>() / sample.len() as f64) as f32
            };
            for v in sample.iter_mut() {
                *v = (f * *v + (1.0 - f) * mean).clamp(0.0, 1.0);
            }
        }
    }
}

/// The loader's per-sample pipeline: its settings and how to run it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pipeline {
    /// A random resized crop back to the sample's size, first.
    pub(crate) resized_crop: Option<RandomResizedCrop>,
    /// Zero padding of the random crop, if cropping.
    pub(crate) crop_padding: Option<usize>,
    /// Flip horizontally with probability ½.
    pub(crate) flip: bool,
    /// Brightness and contrast jitter after the flip.
    pub(crate) jitter: Option<ColorJitter>,
    /// Normalise last.
    pub(crate) normalize: Option<Normalize>,
}

impl Pipeline {
    /// Transforms in place `sample` (at `position` of `epoch`'s order). `scratch` is
    /// working space for the crop, which reads a copy of the sample; pass the same vector
    /// for every sample to allocate it once.
    ///
    /// The random choices come from a generator keyed by (seed, epoch, position): the
    /// resized crop's box, the crop's top then left offset, each uniform in `0..=2·padding`,
    /// then the flip coin, then the jitter factors. They do not depend on which thread
    /// prepares the sample or on the batch size.
    pub(crate) fn run(
        &self,
        sample: &mut [f32],
        shape: [usize; 3],
        seed: u64,
        epoch: u64,
        position: usize,
        scratch: &mut Vec<f32>,
    ) {
        let mut rng = SplitMix64::stream(seed, Purpose::Augment, &[epoch, position as u64]);
        if let Some(rrc) = &self.resized_crop {
            let [_, h, w] = shape;
            let crop = rrc.sample(h, w, &mut rng);
            scratch.clear();
            scratch.extend_from_slice(sample);
            crop_resize(scratch, shape, crop, h, w, sample);
        }
        if let Some(padding) = self.crop_padding {
            let span = 2 * padding as u64 + 1;
            let top = rng.below(span) as usize;
            let left = rng.below(span) as usize;
            scratch.clear();
            scratch.extend_from_slice(sample);
            crop_padded(scratch, shape, padding, top, left, sample);
        }
        if self.flip && rng.below(2) == 1 {
            flip_horizontal(sample, shape);
        }
        if let Some(jitter) = &self.jitter {
            jitter.apply(sample, shape, &mut rng);
        }
        if let Some(normalize) = &self.normalize {
            normalize.apply(sample, shape);
        }
    }
}
