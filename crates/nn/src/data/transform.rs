//! Per-sample transforms: random crop with zero padding, horizontal flip, normalisation.
//!
//! The [`DataLoader`](super::DataLoader) applies them in torchvision's usual order for
//! image training (`RandomCrop(padding) → RandomHorizontalFlip → ToTensor → Normalize`):
//! crop, then flip, then normalise. Padding is therefore zero in `[0, 1]` pixel space
//! (black), as torchvision pads the image before normalising. The building blocks are public
//! so that a test or a custom pipeline can apply them with chosen, non-random parameters.

use super::error::{DataError, Result};
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

/// The loader's per-sample pipeline: its settings and how to run it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pipeline {
    /// Zero padding of the random crop, if cropping.
    pub(crate) crop_padding: Option<usize>,
    /// Flip horizontally with probability ½.
    pub(crate) flip: bool,
    /// Normalise last.
    pub(crate) normalize: Option<Normalize>,
}

impl Pipeline {
    /// Transforms in place `sample` (at `position` of `epoch`'s order). `scratch` is
    /// working space for the crop, which reads a copy of the sample; pass the same vector
    /// for every sample to allocate it once.
    ///
    /// The random choices come from a generator keyed by (seed, epoch, position): the crop's
    /// top then left offset, each uniform in `0..=2·padding`, then the flip coin. They do
    /// not depend on which thread prepares the sample or on the batch size.
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
        if let Some(normalize) = &self.normalize {
            normalize.apply(sample, shape);
        }
    }
}
