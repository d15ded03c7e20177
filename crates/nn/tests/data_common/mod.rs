//! Helpers shared by the data tests: repository paths, synthetic IDX/gzip files, datasets.
#![allow(dead_code, unused_imports)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use ventral_nn::data::{
    Batch, CIFAR10_CLASSES, DataError, DataLoader, Dataset, FASHION_MNIST_CLASSES, InMemoryDataset,
    Prefetch, Split, crop_padded, flip_horizontal, load, load_idx, read_csv, read_digits_csv,
    read_idx_images, read_idx_labels,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The repository's `data/<name>` folder.
pub fn repo_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ventral-data-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `bytes` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

/// An IDX header: magic then big-endian dimensions.
pub fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes
}

pub fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = idx_header(0x803, &[count, rows, cols]);
    bytes.extend_from_slice(pixels);
    bytes
}

pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = idx_header(0x801, &[labels.len() as u32]);
    bytes.extend_from_slice(labels);
    bytes
}

/// Asserts the error's message names the file, so a user knows which one is bad.
pub fn assert_names(err: &DataError, path: &Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(err.to_string().contains(name), "{err} does not name {name}");
}

pub fn mean_times_255(ds: &InMemoryDataset) -> f64 {
    let values = ds.to_f32();
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64 * 255.0
}

/// A dataset of `n` samples of `shape` whose values are distinct (sample i, element k →
/// i + k/1000) and labels i % classes.
pub fn synthetic(n: usize, shape: [usize; 3], classes: usize) -> InMemoryDataset {
    let per = shape.iter().product::<usize>();
    let data = (0..n)
        .flat_map(|i| (0..per).map(move |k| i as f32 + k as f32 / 1000.0))
        .collect();
    InMemoryDataset::new(
        shape,
        data,
        (0..n).map(|i| i % classes).collect(),
        classes,
        None,
    )
    .unwrap()
}

pub fn all_batches(loader: &DataLoader<InMemoryDataset>, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).collect()
}

/// Bitwise equality of batches (f32 `==` would equate 0.0 and -0.0).
pub fn assert_bit_identical(a: &[Batch], b: &[Batch]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape, y.shape);
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.indices, y.indices);
        assert_eq!(x.batch, y.batch);
        let xb: Vec<u32> = x.inputs.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u32> = y.inputs.iter().map(|v| v.to_bits()).collect();
        assert_eq!(xb, yb, "batch {} differs", x.batch);
    }
}

/// One CIFAR-10 record: label, then R, G, B planes of 32x32. Pixel k of the record is
/// (k + 3·seed) mod 256, so every record and channel is distinguishable.
pub fn cifar_record(label: u8, seed: usize) -> Vec<u8> {
    let mut record = vec![label];
    record.extend((0..3072).map(|k| ((k + 3 * seed) % 256) as u8));
    record
}
