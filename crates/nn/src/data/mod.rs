//! Datasets and data loading: the readers of the standard image-classification formats, an
//! in-memory [`Dataset`], and a [`DataLoader`] that batches, shuffles, augments and prefetches.
//!
//! | format | reader | samples |
//! |---|---|---|
//! | MNIST / Fashion-MNIST IDX (raw or `.gz`) | [`load_idx`], [`read_idx_images`], [`read_idx_labels`] | `[1, 28, 28]`, pixels / 255 |
//! | CIFAR-10 binary batches | [`load_cifar10_files`], [`read_cifar10_batch`] | `[3, 32, 32]`, pixels / 255 |
//! | scikit-learn digits CSV | [`read_digits_csv`] | `[1, 8, 8]`, values / 16 |
//! | numeric `fields…, class` CSV | [`read_csv`] | `[F, 1, 1]`, as written |
//! | image folder `DIR/train/<class>/*.png\|jpg` | [`open_image_folder`] ([`ImageFolder`], decoded per sample) | `[C, S, S]`, pixels / 255 |
//!
//! The image readers keep pixels as bytes (one per value) and scale them to `f32` only when a
//! sample or batch is built, bit-identically to scaling them up front (see
//! [`InMemoryDataset`]); CSV features are kept as `f32`.
//!
//! [`load`] picks the reader and the files from a dataset name. Every reader validates magic
//! numbers, dimensions, lengths and labels, reports problems as a [`DataError`] naming the
//! file, and never allocates from a header's claim before checking it against the file and
//! against the limits of [`crate::limits`] (decompressed bytes, image pixels, classes; the
//! module states each reader's memory bound). FIFOs, devices and directories are refused.
//! Gzip is recognised by its magic bytes, so a `.gz` file and its decompressed twin read the
//! same. [`read_image`] decodes the PNG, JPEG and PGM/PPM images `ventral predict` takes.
//!
//! ```no_run
//! use std::path::Path;
//! use ventral_nn::data::{load, DataLoader, Prefetch, Split};
//!
//! let train = load("mnist", Path::new("data/mnist"), Split::Train)?;
//! let (mean, std) = train.channel_mean_std();
//! let loader = DataLoader::new(train, 64)?
//!     .shuffle()
//!     .seed(42)
//!     .normalize(mean, std)?
//!     .prefetch(Prefetch::Background);
//! for epoch in 0..2 {
//!     for batch in loader.epoch(epoch) {
//!         assert_eq!(&batch.shape[1..], &[1, 28, 28]);
//!     }
//! }
//! # Ok::<(), ventral_nn::data::DataError>(())
//! ```

mod cifar;
mod classes;
mod csv;
mod dataset;
mod error;
mod folder;
mod idx;
mod image;
mod input;
mod loader;
mod resize;
mod transform;

use std::path::{Path, PathBuf};

pub use self::image::{
    Image, Pixels, decode_image, decode_pixels, read_image, read_image_size, read_pixels,
};
pub use cifar::{
    CIFAR10_CLASSES, CIFAR10_RECORD_BYTES, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, CifarBatch,
    load_cifar10_files, read_cifar10_batch,
};
pub use csv::{MAX_CSV_CLASSES, read_csv, read_digits_csv};
pub use dataset::{Dataset, InMemoryDataset, Sample};
pub use error::{DataError, Result};
pub use folder::{
    ChannelStats, FolderOptions, FolderReport, ImageFolder, LoadFailures, open_image_folder,
};
pub use idx::{
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, IdxImages, load_idx, read_idx_images, read_idx_labels,
};
pub use input::MAX_FILE_BYTES;
pub use loader::{Batch, Batches, DataLoader, Prefetch};
pub use resize::{CropBox, crop_resize, resize_plane};
pub use transform::{ColorJitter, Normalize, RandomResizedCrop, crop_padded, flip_horizontal};

/// Which part of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set.
    Train,
    /// The held-out test set.
    Test,
}

/// Fashion-MNIST's class names by label (from the dataset's README).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Loads a dataset by name from the folder `dir`.
///
/// | `name` | files looked for in `dir` |
/// |---|---|
/// | `mnist`, `fashion-mnist` | `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` (Train) or `t10k-…` (Test), each `.gz` or raw |
/// | `cifar10` | `data_batch_1.bin` … `data_batch_5.bin` (Train) or `test_batch.bin` (Test), in `dir` or `dir/cifar-10-batches-bin` |
/// | `digits` | `digits.csv.gz` or `digits.csv`; Train only (the file has no split) |
/// | `csv:PATH` | the file `PATH` (relative to `dir` unless absolute); `split` is ignored, the path chooses the file |
///
/// Image pixels are scaled to `[0, 1]`. MNIST and digits get class names `"0"`…`"9"`,
/// Fashion-MNIST and CIFAR-10 their published names.
///
/// # Errors
/// [`DataError::UnknownDataset`] for another name, [`DataError::NoTestSplit`] for
/// `digits` with [`Split::Test`], [`DataError::NotFound`] when a file is missing, and any
/// error of the format's reader.
pub fn load(name: &str, dir: &Path, split: Split) -> Result<InMemoryDataset> {
    let digit_names = || Some((0..10).map(|d| d.to_string()).collect());
    match name {
        "mnist" => load_idx_split(dir, split, digit_names()),
        "fashion-mnist" => load_idx_split(
            dir,
            split,
            Some(
                FASHION_MNIST_CLASSES
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
        ),
        "cifar10" => {
            let base = if dir.join("cifar-10-batches-bin").is_dir() {
                dir.join("cifar-10-batches-bin")
            } else {
                dir.to_path_buf()
            };
            let names: &[&str] = match split {
                Split::Train => &CIFAR10_TRAIN_FILES,
                Split::Test => &[CIFAR10_TEST_FILE],
            };
            let paths = names
                .iter()
                .map(|n| find(&base, &[n]))
                .collect::<Result<Vec<_>>>()?;
            load_cifar10_files(&paths)
        }
        "digits" => match split {
            Split::Train => read_digits_csv(&find(dir, &["digits.csv.gz", "digits.csv"])?),
            Split::Test => Err(DataError::NoTestSplit {
                name: name.to_string(),
            }),
        },
        _ => match name.strip_prefix("csv:") {
            Some(path) if !path.is_empty() => read_csv(&dir.join(path)),
            _ => Err(DataError::UnknownDataset {
                name: name.to_string(),
            }),
        },
    }
}

/// Loads one split of an MNIST-layout folder.
fn load_idx_split(dir: &Path, split: Split, names: Option<Vec<String>>) -> Result<InMemoryDataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = format!("{prefix}-images-idx3-ubyte");
    let labels = format!("{prefix}-labels-idx1-ubyte");
    let images = find(dir, &[&format!("{images}.gz"), &images])?;
    let labels = find(dir, &[&format!("{labels}.gz"), &labels])?;
    load_idx(&images, &labels, 10, names)
}

/// The first of `names` that exists in `dir` (a FIFO or folder of that name is found, and
/// then refused by the reader with a message that says so).
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| DataError::NotFound {
            dir: dir.to_path_buf(),
            tried: names.join(", "),
        })
}
