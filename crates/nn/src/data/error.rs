//! The one error type of the data module.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong while reading a dataset or configuring a [`DataLoader`](super::DataLoader).
///
/// Every variant that comes from a file names that file, so a message such as
/// `data/mnist/train-labels-idx1-ubyte.gz: label 12 of sample 4051 is outside 0..10` says
/// both where and what. Readers never panic on bad input and never allocate more than the
/// file can actually hold: a header's counts are checked against the file before any buffer
/// is sized from them.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The operating system refused to open or read the file.
    #[error("{path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A dataset file was not found under any of the names tried.
    #[error("{dir}: none of {tried} exists")]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
        /// The file names tried, comma separated.
        tried: String,
    },
    /// The file has no bytes at all.
    #[error("{path}: the file is empty")]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The file name ends in `.gz` but the content does not start with the gzip magic `1f 8b`.
    #[error("{path}: the name ends in .gz but the file does not start with the gzip magic 1f 8b")]
    NotGzip {
        /// The mislabelled file.
        path: PathBuf,
    },
    /// The gzip stream is corrupt (bad deflate data, bad CRC, cut short inside the stream).
    #[error("{path}: corrupt gzip data: {source}")]
    Gzip {
        /// The compressed file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the magic number its format requires.
    #[error("{path}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({format})")]
    BadMagic {
        /// The file read.
        path: PathBuf,
        /// The first four bytes, big-endian.
        found: u32,
        /// The magic number of the expected format.
        expected: u32,
        /// The format that was expected, e.g. `IDX images`.
        format: &'static str,
    },
    /// A header field is impossible or implausible (zero or absurd dimensions, a count whose
    /// data cannot fit in the file).
    #[error("{path}: bad header: {what}")]
    BadHeader {
        /// The file read.
        path: PathBuf,
        /// What was wrong, with the offending values.
        what: String,
    },
    /// The file ends before the data its header (or record layout) promises.
    #[error("{path}: truncated: {what} needs {expected} bytes, the file has {found}")]
    Truncated {
        /// The file read.
        path: PathBuf,
        /// The part that was cut short.
        what: String,
        /// Bytes needed (after decompression, for gzip files).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Bytes follow the data the header describes; the file is probably not what it claims to be.
    #[error("{path}: unexpected data after the {expected} bytes the header describes")]
    TrailingData {
        /// The file read.
        path: PathBuf,
        /// Bytes the header accounts for.
        expected: u64,
    },
    /// The (decompressed) file is larger than
    /// [`Limits::decompressed_bytes`](crate::limits::Limits::decompressed_bytes).
    #[error(
        "{path}: larger than the {limit}-byte limit for a dataset file after decompression (VENTRAL_MAX_DECOMPRESSED_BYTES raises it)"
    )]
    TooLarge {
        /// The file read.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// A label is not a valid class index.
    #[error("{path}: label {label} of sample {index} is outside 0..{num_classes}")]
    LabelOutOfRange {
        /// The file read.
        path: PathBuf,
        /// Zero-based sample index.
        index: usize,
        /// The offending label.
        label: u64,
        /// The number of classes of the dataset.
        num_classes: usize,
    },
    /// A CSV line could not be parsed. `line` is one-based, as an editor shows it.
    #[error("{path}: line {line}: {what}")]
    Csv {
        /// The file read.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// What was wrong, with the offending text.
        what: String,
    },
    /// An images file and its labels file disagree on the number of samples.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Samples in the images file.
        image_count: usize,
        /// The labels file.
        labels: PathBuf,
        /// Samples in the labels file.
        label_count: usize,
    },
    /// [`load`](super::load) was given a name it does not know.
    #[error("unknown dataset {name:?}: expected mnist, fashion-mnist, cifar10, digits or csv:PATH")]
    UnknownDataset {
        /// The name given.
        name: String,
    },
    /// The dataset ships as one file with no test split.
    #[error(
        "dataset {name:?} has no test split; load Split::Train and divide it with InMemoryDataset::subset"
    )]
    NoTestSplit {
        /// The dataset's name.
        name: String,
    },
    /// An image file is not a PNG or binary PGM/PPM, or is corrupt or truncated.
    #[error("{path}: corrupt image: {what}")]
    BadImage {
        /// The file read.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// An image's header declares more pixels than
    /// [`Limits::image_pixels`](crate::limits::Limits::image_pixels).
    #[error(
        "{path}: {width}x{height} = {} pixels, more than the limit of {limit} (VENTRAL_MAX_IMAGE_PIXELS raises it)",
        .width.saturating_mul(*.height)
    )]
    TooManyPixels {
        /// The file read.
        path: PathBuf,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit.
        limit: u64,
    },
    /// A limit's environment variable is set to nonsense.
    #[error(transparent)]
    Limit(#[from] crate::limits::InvalidLimit),
    /// More classes than [`Limits::classes`](crate::limits::Limits::classes) allows.
    #[error(
        "{path}: {classes} classes, more than the limit of {limit} (VENTRAL_MAX_CLASSES raises it)"
    )]
    TooManyClasses {
        /// The file read.
        path: PathBuf,
        /// The classes the file declares (at least).
        classes: usize,
        /// The limit.
        limit: usize,
    },
    /// A feature (channel) has the same value in every sample, so normalising divides by a
    /// standard deviation of 0.
    #[error(
        "{what} has the same value {mean} in every sample (standard deviation 0), so it cannot be normalised; remove it"
    )]
    ConstantFeature {
        /// The file and column (or channel), e.g. `data/x.csv: column 3 ("width")`.
        what: String,
        /// Its one value.
        mean: f32,
    },
    /// An image folder's layout is wrong (no `train/`, a class folder without images, a
    /// validation class the training set lacks, …).
    #[error("{dir}: {what}")]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// What is wrong with it, and what was expected.
        what: String,
    },
    /// An argument that does not fit the dataset (batch size 0, a mean per channel for the
    /// wrong number of channels, a restored order that is not a permutation, …).
    #[error("{0}")]
    Invalid(String),
}

/// The result type of every fallible function of the data module.
pub type Result<T> = std::result::Result<T, DataError>;
