//! Where `ventral train`'s samples come from: a dataset held in memory (MNIST, CIFAR-10, a
//! CSV…) or an image folder decoded as batches are made (`--dataset folder:DIR`); their
//! normalisation; and the training loader's augmentation and background threads.

use std::path::PathBuf;

use anyhow::{Result, bail};
use ventral_models::find;
use ventral_nn::data::{
    ColorJitter, DataLoader, Dataset, FolderOptions, ImageFolder, InMemoryDataset, LoadFailures,
    Prefetch, RandomResizedCrop, Sample, open_image_folder,
};
use ventral_nn::rng::SplitMix64;

use super::args::TrainArgs;
use super::setup::load_datasets;

/// Decoding threads of an image folder without `--data-workers`.
const DEFAULT_WORKERS: u16 = 2;

/// How many skipped files are named, one line each (all are counted).
const NAMED_SKIPS: usize = 5;

/// A training or test set of either kind.
pub enum Source {
    /// Read whole into memory.
    Memory(InMemoryDataset),
    /// An image folder, decoded sample by sample.
    Folder(ImageFolder),
}

impl Source {
    /// The class names, if the dataset has them.
    pub fn class_names(&self) -> Option<&[String]> {
        match self {
            Source::Memory(d) => d.class_names(),
            Source::Folder(d) => Some(d.class_names()),
        }
    }

    /// An image folder's decoding failures while batches were made.
    pub fn failures(&self) -> Option<&LoadFailures> {
        match self {
            Source::Memory(_) => None,
            Source::Folder(d) => Some(d.failures()),
        }
    }
}

impl Dataset for Source {
    fn len(&self) -> usize {
        match self {
            Source::Memory(d) => d.len(),
            Source::Folder(d) => d.len(),
        }
    }

    fn sample_shape(&self) -> [usize; 3] {
        match self {
            Source::Memory(d) => d.sample_shape(),
            Source::Folder(d) => d.sample_shape(),
        }
    }

    fn num_classes(&self) -> usize {
        match self {
            Source::Memory(d) => d.num_classes(),
            Source::Folder(d) => d.num_classes(),
        }
    }

    fn get(&self, index: usize) -> Sample<'_> {
        match self {
            Source::Memory(d) => d.get(index),
            Source::Folder(d) => d.get(index),
        }
    }

    fn describe_channel(&self, channel: usize) -> String {
        match self {
            Source::Memory(d) => d.describe_channel(channel),
            Source::Folder(d) => d.describe_channel(channel),
        }
    }

    fn write_sample(&self, index: usize, dst: &mut [f32]) -> usize {
        match self {
            Source::Memory(d) => d.write_sample(index, dst),
            Source::Folder(d) => d.write_sample(index, dst),
        }
    }

    fn write_sample_random(&self, index: usize, dst: &mut [f32], rng: &mut SplitMix64) -> usize {
        match self {
            Source::Memory(d) => d.write_sample_random(index, dst, rng),
            Source::Folder(d) => d.write_sample_random(index, dst, rng),
        }
    }
}

/// The training and test sets with the normalisation both are fed with.
pub struct Loaded {
    /// The training set.
    pub train: Source,
    /// The test (validation) set.
    pub test: Source,
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// Loads the datasets of `args`; the normalisation is `--normalize` (or the preset's), else
/// computed from the training set.
///
/// # Errors
/// Missing or corrupt data, a bad folder layout, statistics that do not fit the channels.
pub fn load(args: &TrainArgs) -> Result<Loaded> {
    let aug = args.data.augmentation()?;
    if let Some(dir) = args.dataset.strip_prefix("folder:") {
        return load_folder(dir, args);
    }
    let folder_only = [
        ("--image-size", args.data.image_size.is_some()),
        ("--val-split", args.data.val_split.is_some()),
        ("--strict-data", args.data.strict_data),
    ];
    if let Some((flag, _)) = folder_only.iter().find(|(_, given)| *given) {
        bail!(
            "{flag} applies to image folders (--dataset folder:DIR), not to {}",
            args.dataset
        );
    }
    let (train, test) = load_datasets(args)?;
    let (mean, std) = match aug.normalize {
        Some(given) => given,
        None => train.channel_mean_std(),
    };
    Ok(Loaded {
        train: Source::Memory(train),
        test: Source::Memory(test),
        mean,
        std,
    })
}

/// `--dataset folder:DIR`: DIR relative to `--data-dir` if given, else to the current
/// directory. Samples have the model's input channels.
fn load_folder(dir: &str, args: &TrainArgs) -> Result<Loaded> {
    if dir.is_empty() {
        bail!("--dataset folder:DIR needs a folder, e.g. folder:photos");
    }
    let root = match &args.data_dir {
        Some(d) => d.join(dir),
        None => PathBuf::from(dir),
    };
    if !root.is_dir() {
        bail!(
            "--dataset folder:{dir}: {} is not a folder (expected DIR/train/<class>/*.png|jpg)",
            root.display()
        );
    }
    if args.classes.is_some() {
        bail!(
            "--classes selects classes of a named dataset; an image folder's classes are its folders"
        );
    }
    let channels = match args.in_channels {
        Some(c) => c as usize,
        None => find(&args.model).map_or(3, |m| m.input[0]),
    };
    if channels != 1 && channels != 3 {
        bail!(
            "model {} takes {channels}-channel inputs; image folders give 1 (grey) or 3 (RGB)",
            args.model
        );
    }
    let aug = args.data.augmentation()?;
    if let Some((mean, _)) = &aug.normalize {
        check_channels(mean, [channels, 1, 1], &args.dataset)?;
    }
    let options = FolderOptions {
        channels,
        size: args.data.image_size.map(|s| s as usize),
        strict: args.data.strict_data,
        val_split: args.data.val_split,
        seed: args.seed,
    };
    let (mut train, mut test, report) = open_image_folder(&root, &options)?;
    let mut skipped = report.skipped;
    let threads = usize::from(args.data.data_workers.unwrap_or(DEFAULT_WORKERS));
    // Decoding every training image once finds the corrupt ones before training starts
    // and gives the statistics; it is skipped when the statistics are given and skipping
    // is allowed.
    let (mean, std) = if options.strict || aug.normalize.is_none() {
        let (stats, failed) = train.verify(threads)?;
        skipped.extend(failed);
        if options.strict {
            test.verify(threads)?;
        }
        aug.normalize.clone().unwrap_or((stats.mean, stats.std))
    } else {
        aug.normalize.clone().unwrap_or_default()
    };
    if !skipped.is_empty() {
        eprintln!(
            "ventral: warning: skipped {} unreadable image{} in {} (--strict-data makes this an error):",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            root.display()
        );
        for (_, why) in skipped.iter().take(NAMED_SKIPS) {
            eprintln!("  {why}");
        }
    }
    if aug.resized_crop {
        train = train.random_resized_crop(RandomResizedCrop::default());
    }
    let train = first(train, args.limit_train)?;
    let test = first(test, args.limit_test)?;
    if train.is_empty() || test.is_empty() {
        bail!(
            "{}: no readable training or validation images",
            root.display()
        );
    }
    Ok(Loaded {
        train: Source::Folder(train),
        test: Source::Folder(test),
        mean,
        std,
    })
}

/// `--limit-train` / `--limit-test` on an image folder: `n` images spread evenly over its
/// file list (image `⌊i·len/n⌋` for `i < n`), since the first `n` in class order would be
/// the first classes only.
fn first(dataset: ImageFolder, limit: Option<u64>) -> Result<ImageFolder> {
    let len = dataset.len();
    Ok(match limit {
        Some(n) if (n as usize) < len => dataset.subset(&spread(len, n as usize))?,
        _ => dataset,
    })
}

/// `n` indices spread evenly over `0..len`: `⌊i·len/n⌋` for `i < n`.
fn spread(len: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| i * len / n).collect()
}

/// The training loader with the augmentation of `args` (the random resized crop of an
/// image folder is done by the folder itself, at the image's resolution).
///
/// # Errors
/// A jitter strength out of range (from a hand-edited config.json).
pub fn augment(mut loader: DataLoader<Source>, args: &TrainArgs) -> Result<DataLoader<Source>> {
    let aug = args.data.augmentation()?;
    let folder = matches!(loader.dataset().as_ref(), Source::Folder(_));
    if aug.resized_crop && !folder {
        loader = loader.random_resized_crop(RandomResizedCrop::default());
    }
    if let Some(padding) = aug.random_crop {
        loader = loader.random_crop(padding);
    }
    if aug.flip {
        loader = loader.horizontal_flip();
    }
    if let Some((b, c)) = aug.jitter {
        loader = loader.color_jitter(ColorJitter::new(b, c)?);
    }
    Ok(loader)
}

/// Where batches of `dataset` are prepared: image folders on `--data-workers` threads
/// (default 2), datasets in memory on one background thread (or `--data-workers`).
pub fn prefetch(args: &TrainArgs, dataset: &Source) -> Prefetch {
    match (args.data.data_workers, dataset) {
        (Some(n), _) => Prefetch::Workers(usize::from(n)),
        (None, Source::Folder(_)) => Prefetch::Workers(usize::from(DEFAULT_WORKERS)),
        (None, Source::Memory(_)) => Prefetch::Background,
    }
}

/// One warning line (and the first few errors) for images that failed to decode while
/// batches were made, fed as black images.
pub fn report_failures(sets: &[&Source]) {
    for set in sets {
        let Some(failures) = set.failures().filter(|f| f.count() > 0) else {
            continue;
        };
        eprintln!(
            "ventral: warning: {} samples could not be decoded while training and were fed as black images:",
            failures.count()
        );
        for line in failures.first() {
            eprintln!("  {line}");
        }
    }
}

/// The `--normalize` statistics must have one value per channel of the samples.
///
/// # Errors
/// When they do not.
pub fn check_channels(mean: &[f32], shape: [usize; 3], dataset: &str) -> Result<()> {
    if mean.len() != shape[0] {
        bail!(
            "--normalize (or the --augment preset) gives {} channel statistics, but {dataset}'s samples have {} channels; give --normalize MEAN:STD with one value per channel (ventral data stats {dataset} prints them)",
            mean.len(),
            shape[0]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn limits_spread_over_the_classes() {
        // 24 images of 3 classes (8 each, in class order): 6 of them are 2 per class.
        let picked = spread(24, 6);
        assert_eq!(picked, [0, 4, 8, 12, 16, 20]);
        let classes: Vec<usize> = picked.iter().map(|i| i / 8).collect();
        assert_eq!(classes, [0, 0, 1, 1, 2, 2]);
        assert_eq!(spread(5, 5), [0, 1, 2, 3, 4]);
    }
}
