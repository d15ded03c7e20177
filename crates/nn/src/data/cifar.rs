//! CIFAR-10's binary batches (`cifar-10-batches-bin/`).
//!
//! Each file is a sequence of 3073-byte records: one label byte (0..=9), then a 32×32 colour
//! image as 1024 red, 1024 green and 1024 blue bytes, each plane row-major. That is already
//! `[3, 32, 32]` CHW order, so a record's pixels are copied as they are. The official files
//! hold 10,000 records each; any positive whole number of records is accepted.

use std::path::{Path, PathBuf};

use super::dataset::InMemoryDataset;
use super::error::{DataError, Result};
use super::idx::PIXEL_DIVISOR;
use super::input::Input;

/// Bytes per CIFAR-10 record: 1 label + 3·32·32 pixels.
pub const CIFAR10_RECORD_BYTES: usize = 1 + CIFAR10_IMAGE_BYTES;
/// Pixel bytes per CIFAR-10 image.
const CIFAR10_IMAGE_BYTES: usize = 3 * 32 * 32;

/// CIFAR-10's class names by label, from `batches.meta.txt`.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The five training batch files, in the order they are concatenated.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";

/// The records of one CIFAR-10 batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarBatch {
    /// One label per record, each in 0..=9.
    pub labels: Vec<u8>,
    /// 3072 bytes per record, `[3, 32, 32]` CHW.
    pub pixels: Vec<u8>,
}

/// Reads one CIFAR-10 batch file (raw, or gzip if it starts with the gzip magic).
///
/// # Errors
/// [`DataError::Empty`]; [`DataError::Truncated`] when the length is not a whole number of
/// 3073-byte records; [`DataError::LabelOutOfRange`] for a label byte above 9; the I/O and
/// gzip errors of any reader.
pub fn read_cifar10_batch(path: &Path) -> Result<CifarBatch> {
    let mut input = Input::open(path)?;
    let bytes = input.read_rest()?;
    let records = bytes.len() / CIFAR10_RECORD_BYTES;
    if bytes.len() % CIFAR10_RECORD_BYTES != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("record {records} of {CIFAR10_RECORD_BYTES} bytes"),
            expected: ((records + 1) * CIFAR10_RECORD_BYTES) as u64,
            found: bytes.len() as u64,
        });
    }
    // Compact the records in place: each image's bytes move down over the label bytes
    // before them, so the file buffer becomes the pixel buffer without a second copy.
    let mut pixels = bytes;
    let mut labels = Vec::with_capacity(records);
    for index in 0..records {
        let record = index * CIFAR10_RECORD_BYTES;
        let label = pixels[record];
        if usize::from(label) >= CIFAR10_CLASSES.len() {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: u64::from(label),
                num_classes: CIFAR10_CLASSES.len(),
            });
        }
        labels.push(label);
        pixels.copy_within(
            record + 1..record + CIFAR10_RECORD_BYTES,
            index * CIFAR10_IMAGE_BYTES,
        );
    }
    pixels.truncate(records * CIFAR10_IMAGE_BYTES);
    pixels.shrink_to_fit();
    Ok(CifarBatch { labels, pixels })
}

/// Reads and concatenates CIFAR-10 batch files into one dataset of `[3, 32, 32]` samples,
/// pixels scaled to `[0, 1]` (`byte / 255`, kept as bytes: see
/// [`InMemoryDataset::from_u8`]), with CIFAR-10's class names.
///
/// # Errors
/// Those of [`read_cifar10_batch`] for any file, and [`DataError::Invalid`] for an empty
/// list.
pub fn load_cifar10_files(paths: &[PathBuf]) -> Result<InMemoryDataset> {
    if paths.is_empty() {
        return Err(DataError::Invalid(
            "no CIFAR-10 batch files given".to_string(),
        ));
    }
    let mut pixels: Vec<u8> = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let batch = read_cifar10_batch(path)?;
        if pixels.is_empty() {
            // The first file's buffer is kept as it is; later ones are appended.
            pixels = batch.pixels;
        } else {
            pixels.reserve_exact(batch.pixels.len());
            pixels.extend_from_slice(&batch.pixels);
        }
        labels.extend(batch.labels.iter().map(|&l| usize::from(l)));
    }
    labels.shrink_to_fit();
    InMemoryDataset::from_u8(
        [3, 32, 32],
        pixels,
        PIXEL_DIVISOR,
        labels,
        CIFAR10_CLASSES.len(),
        Some(CIFAR10_CLASSES.iter().map(ToString::to_string).collect()),
    )
}
