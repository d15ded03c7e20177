//! `ventral data stats` (per-channel mean and standard deviation of a training set, as
//! `--normalize` takes them) and `ventral data export-folder` (a dataset written as an image
//! folder of PNG or JPEG files, the layout `--dataset folder:DIR` reads).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use image::ImageEncoder;
use ventral_nn::data::{self, Dataset, FolderOptions, InMemoryDataset, Split, open_image_folder};

use crate::data_dir::load_named;

/// Arguments of `ventral data stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// mnist, fashion-mnist, cifar10, digits, csv:PATH or folder:DIR.
    data: String,
    /// Directory holding the dataset's files (default: ./data/<dataset>, see `ventral train`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Image folders: the sample size S (as `ventral train --image-size`).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..=4096))]
    image_size: Option<u32>,
    /// Image folders: channels of the samples, 1 or 3 (default: those of the first image).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    channels: Option<u8>,
    /// Image folders without val/ or test/: the held-out fraction (as `ventral train`).
    #[arg(long, value_name = "F")]
    val_split: Option<f64>,
    /// The seed of --val-split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image folders: decoding threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
}

/// Runs `ventral data stats`: prints the sample count and shape, then the statistics as a
/// `--normalize` flag.
///
/// # Errors
/// Missing or corrupt data.
pub fn stats(args: StatsArgs) -> Result<()> {
    let (count, shape, mean, std) = match args.data.strip_prefix("folder:") {
        Some(dir) => folder_stats(dir, &args)?,
        None => {
            let train = load_named(&args.data, args.data_dir.as_deref(), Split::Train)?;
            let (mean, std) = train.channel_mean_std();
            (train.len(), train.sample_shape(), mean, std)
        }
    };
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{}: {count} training samples of {}x{}x{}",
        args.data, shape[0], shape[1], shape[2]
    );
    println!("--normalize {}:{}", list(&mean), list(&std));
    Ok(())
}

type Stats = (usize, [usize; 3], Vec<f32>, Vec<f32>);

fn folder_stats(dir: &str, args: &StatsArgs) -> Result<Stats> {
    let root = match &args.data_dir {
        Some(d) => d.join(dir),
        None => PathBuf::from(dir),
    };
    if !root.is_dir() {
        bail!("{}: no such folder", root.display());
    }
    let options = FolderOptions {
        channels: 3,
        size: args.image_size.map(|s| s as usize),
        strict: false,
        val_split: args.val_split,
        seed: args.seed,
    };
    let (train, _, report) = open_image_folder(&root, &options)?;
    let channels = match args.channels {
        Some(c @ (1 | 3)) => usize::from(c),
        Some(c) => bail!("--channels {c}: image folders give 1 (grey) or 3 (RGB) channels"),
        None => data::read_pixels(&train.files()[0])?.channels,
    };
    let mut train = train.with_channels(channels)?;
    let (stats, failed) = train.verify(usize::from(args.workers))?;
    let skipped = report.skipped.len() + failed.len();
    if skipped > 0 {
        eprintln!("ventral: warning: skipped {skipped} unreadable images");
    }
    Ok((train.len(), train.sample_shape(), stats.mean, stats.std))
}

/// The file formats `export-folder` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// Lossless PNG.
    Png,
    /// JPEG at --quality.
    Jpeg,
}

/// Arguments of `ventral data export-folder`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The dataset to write: mnist, fashion-mnist, cifar10 or digits.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Directory holding the dataset's files (default: ./data/<dataset>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// File format.
    #[arg(long, value_enum, default_value_t = ImageFormat::Png)]
    format: ImageFormat,
    /// JPEG quality, 1-100.
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Write only the first N images of each split (quick tests).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// The folder to create: OUT/train/<class>/*.png and OUT/test/<class>/*.
    out: PathBuf,
}

/// Runs `ventral data export-folder`: `OUT/train/<class>/NNNNN.png|jpg` and
/// `OUT/test/<class>/…`, one folder per class named by the class name (prefixed with the
/// label when the names would not sort in label order), pixels written as stored.
///
/// # Errors
/// Missing data, an OUT that already holds files, a file that cannot be written.
pub fn export_folder(args: ExportArgs) -> Result<()> {
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose a new folder",
            args.out.display()
        );
    }
    for (split, name) in [(Split::Train, "train"), (Split::Test, "test")] {
        let set = load_named(&args.dataset, args.data_dir.as_deref(), split)?;
        let n = args.limit.map_or(set.len(), |l| set.len().min(l as usize));
        let folders = class_folders(&set);
        let dir = args.out.join(name);
        for f in &folders {
            std::fs::create_dir_all(dir.join(f))
                .with_context(|| format!("cannot create {}", dir.join(f).display()))?;
        }
        let digits = n.max(1).to_string().len();
        let ext = match args.format {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
        };
        for i in 0..n {
            let sample = set.get(i);
            let path = dir
                .join(&folders[sample.label])
                .join(format!("{i:0digits$}.{ext}"));
            let bytes = encode(&sample.data, sample.shape, args.format, args.quality)
                .with_context(|| format!("cannot encode {}", path.display()))?;
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(&bytes))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        println!("wrote {n} images to {}", dir.display());
    }
    Ok(())
}

/// One folder name per class: its name with `/` and `\` replaced, prefixed with the
/// zero-padded label unless the names already sort in label order (folders are read back in
/// sorted order, so the labels then stay the same).
fn class_folders(set: &InMemoryDataset) -> Vec<String> {
    let classes = set.num_classes();
    let names: Vec<String> = match set.class_names() {
        Some(names) => names.iter().map(|n| n.replace(['/', '\\'], "_")).collect(),
        None => (0..classes).map(|c| c.to_string()).collect(),
    };
    if names.windows(2).all(|w| w[0] < w[1]) {
        return names;
    }
    let width = classes.to_string().len();
    names
        .iter()
        .enumerate()
        .map(|(c, n)| format!("{c:0width$}-{n}"))
        .collect()
}

/// A `[C, H, W]` sample of values in `[0, 1]` as PNG or JPEG bytes (grey or RGB).
fn encode(
    values: &[f32],
    [c, h, w]: [usize; 3],
    format: ImageFormat,
    quality: u8,
) -> Result<Vec<u8>> {
    let plane = h * w;
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let (pixels, color) = match c {
        1 => (
            values.iter().map(|&v| byte(v)).collect::<Vec<u8>>(),
            image::ColorType::L8,
        ),
        3 => (
            (0..plane)
                .flat_map(|i| (0..3).map(move |k| (k, i)))
                .map(|(k, i)| byte(values[k * plane + i]))
                .collect(),
            image::ColorType::Rgb8,
        ),
        _ => bail!("{c}-channel samples cannot be written as images (1 or 3 channels)"),
    };
    let (w, h) = (u32::try_from(w)?, u32::try_from(h)?);
    let mut out = Vec::new();
    match format {
        ImageFormat::Png => {
            image::codecs::png::PngEncoder::new(&mut out).write_image(&pixels, w, h, color)?
        }
        ImageFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .write_image(&pixels, w, h, color)?,
    }
    Ok(out)
}
