//! The data flags of `ventral train`: image folders (`--image-size`, `--val-split`,
//! `--strict-data`, `--data-workers`) and augmentation (`--augment` presets and the single
//! transforms), kept in `config.json` like every other flag.

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// CIFAR-10's per-channel mean and (population) standard deviation of its training set
/// (`ventral data stats cifar10`), the usual constants of CIFAR recipes.
pub const CIFAR_MEAN_STD: ([f32; 3], [f32; 3]) =
    ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]);

/// ImageNet's per-channel mean and standard deviation, as in torchvision's recipes.
pub const IMAGENET_MEAN_STD: ([f32; 3], [f32; 3]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

/// Data flags of `ventral train` (flattened into [`TrainArgs`](super::TrainArgs)).
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct DataOptions {
    /// Image folders: samples are S×S (the centre square resized for evaluation, a random
    /// resized crop for training with --random-resized-crop); default: the first image's size.
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..=4096))]
    #[serde(default)]
    pub image_size: Option<u32>,
    /// Image folders without a val/ or test/ folder: hold out this fraction of train/ as the
    /// validation set (drawn from --seed).
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    #[serde(default)]
    pub val_split: Option<f64>,
    /// Image folders: stop at the first unreadable image instead of skipping it (every image
    /// is then decoded once before training).
    #[arg(long)]
    #[serde(default)]
    pub strict_data: bool,
    /// Image folders: threads decoding images into a bounded queue of batches (default 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    #[serde(default)]
    pub data_workers: Option<u16>,
    /// Augmentation preset for the training set: cifar = --random-crop 4 --hflip and CIFAR-10
    /// normalisation; imagenet = --random-resized-crop --hflip and ImageNet normalisation.
    #[arg(long, value_enum, default_value_t = AugmentPreset::None)]
    #[serde(default)]
    pub augment: AugmentPreset,
    /// Random crop back to the image's size after zero padding of P pixels on every side.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(0..=1024))]
    #[serde(default)]
    pub random_crop: Option<u32>,
    /// Mirror training images left-right with probability 1/2.
    #[arg(long)]
    #[serde(default)]
    pub hflip: bool,
    /// Random resized crop (area 8-100 %, aspect 3/4-4/3, as torchvision's), resized to the
    /// sample size.
    #[arg(long)]
    #[serde(default)]
    pub random_resized_crop: bool,
    /// Brightness and contrast jitter strengths B,C (each factor uniform in [1-x, 1+x]).
    #[arg(long, value_name = "B,C", value_parser = parse_jitter)]
    #[serde(default)]
    pub color_jitter: Option<String>,
    /// Per-channel normalisation MEAN,..:STD,.. (default: computed from the training set;
    /// `ventral data stats` prints it).
    #[arg(long, value_name = "MEAN,..:STD,..", value_parser = parse_normalize_flag)]
    #[serde(default)]
    pub normalize: Option<String>,
}

/// The presets of `--augment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AugmentPreset {
    /// No augmentation.
    #[default]
    None,
    /// 4-pixel padded random crop, horizontal flip, CIFAR-10 mean and std.
    Cifar,
    /// Random resized crop, horizontal flip, ImageNet mean and std.
    Imagenet,
}

/// The training transforms the flags ask for, presets expanded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Augmentation {
    /// Zero padding of a random crop.
    pub random_crop: Option<usize>,
    /// Horizontal flips.
    pub flip: bool,
    /// A random resized crop.
    pub resized_crop: bool,
    /// Brightness and contrast jitter.
    pub jitter: Option<(f32, f32)>,
    /// Given normalisation (else computed from the training set).
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
}

impl DataOptions {
    /// The transforms asked for: the preset's, plus the single flags (`--normalize`
    /// replaces a preset's statistics).
    ///
    /// # Errors
    /// A malformed `--normalize` or `--color-jitter` (from a hand-edited config.json).
    pub fn augmentation(&self) -> Result<Augmentation> {
        let mut aug = match self.augment {
            AugmentPreset::None => Augmentation::default(),
            AugmentPreset::Cifar => Augmentation {
                random_crop: Some(4),
                flip: true,
                normalize: Some((CIFAR_MEAN_STD.0.to_vec(), CIFAR_MEAN_STD.1.to_vec())),
                ..Augmentation::default()
            },
            AugmentPreset::Imagenet => Augmentation {
                resized_crop: true,
                flip: true,
                normalize: Some((IMAGENET_MEAN_STD.0.to_vec(), IMAGENET_MEAN_STD.1.to_vec())),
                ..Augmentation::default()
            },
        };
        if let Some(p) = self.random_crop {
            aug.random_crop = Some(p as usize);
        }
        aug.flip |= self.hflip;
        aug.resized_crop |= self.random_resized_crop;
        if let Some(j) = &self.color_jitter {
            aug.jitter = Some(parse_jitter_pair(j).map_err(anyhow::Error::msg)?);
        }
        if let Some(n) = &self.normalize {
            aug.normalize = Some(parse_normalize(n).map_err(anyhow::Error::msg)?);
        }
        Ok(aug)
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("must be between 0 and 1 (exclusive), got {s}"))
    }
}

fn parse_jitter(s: &str) -> Result<String, String> {
    parse_jitter_pair(s).map(|_| s.to_string())
}

/// `B,C`, or one value for both.
fn parse_jitter_pair(s: &str) -> Result<(f32, f32), String> {
    let values = parse_list(s)?;
    let (b, c) = match values[..] {
        [v] => (v, v),
        [b, c] => (b, c),
        _ => return Err(format!("expected B,C (two numbers), got {s}")),
    };
    ventral_nn::data::ColorJitter::new(b, c).map_err(|e| e.to_string())?;
    Ok((b, c))
}

fn parse_normalize_flag(s: &str) -> Result<String, String> {
    parse_normalize(s).map(|_| s.to_string())
}

/// `MEAN,..:STD,..` with as many of each, every std > 0.
pub fn parse_normalize(s: &str) -> Result<(Vec<f32>, Vec<f32>), String> {
    let (mean, std) = s
        .split_once(':')
        .ok_or_else(|| format!("expected MEAN,..:STD,.. (e.g. 0.1307:0.3081), got {s}"))?;
    let (mean, std) = (parse_list(mean)?, parse_list(std)?);
    ventral_nn::data::Normalize::new(mean.clone(), std.clone()).map_err(|e| e.to_string())?;
    Ok((mean, std))
}

/// Comma-separated finite numbers, at least one.
fn parse_list(s: &str) -> Result<Vec<f32>, String> {
    s.split(',')
        .map(|v| match v.trim().parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(format!("`{v}` is not a finite number (in {s})")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand_and_flags_add_to_them() {
        let opts = DataOptions {
            augment: AugmentPreset::Cifar,
            color_jitter: Some("0.2,0.1".to_string()),
            ..DataOptions::default()
        };
        let aug = opts.augmentation().unwrap();
        assert_eq!(aug.random_crop, Some(4));
        assert!(aug.flip && !aug.resized_crop);
        assert_eq!(aug.jitter, Some((0.2, 0.1)));
        assert_eq!(aug.normalize.unwrap().0, CIFAR_MEAN_STD.0.to_vec());
        let given = DataOptions {
            augment: AugmentPreset::Imagenet,
            normalize: Some("0.5:0.25".to_string()),
            ..DataOptions::default()
        };
        let aug = given.augmentation().unwrap();
        assert!(aug.resized_crop && aug.flip && aug.random_crop.is_none());
        assert_eq!(aug.normalize, Some((vec![0.5], vec![0.25])));
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        assert_eq!(
            parse_normalize("0.5,0.5:0.2").unwrap_err(),
            "normalize: 2 means and 1 standard deviations (need one of each per channel)"
        );
        assert!(
            parse_normalize("0.5:0")
                .unwrap_err()
                .contains("not finite and positive")
        );
        assert!(
            parse_normalize("0.5")
                .unwrap_err()
                .contains("expected MEAN")
        );
        assert!(parse_jitter("-1").unwrap_err().contains("brightness -1"));
        assert!(parse_fraction("1").is_err() && parse_fraction("0.2").is_ok());
    }
}
