//! Tests of `ventral_nn::data`: the readers on the real MNIST and digits files shipped in
//! `data/`, every reader on corrupt files, CIFAR-10 and CSV on synthetic files in their exact
//! formats, and the DataLoader's batching, order, prefetching and transforms.
//!
//! Expected values for the real datasets come from `shared/data/README.md` (which checked
//! them against the published MNIST counts and scikit-learn's description); expected values
//! for synthetic files follow from how the test wrote them (said next to each).

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
fn repo_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
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
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

/// An IDX header: magic then big-endian dimensions.
fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes
}

fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = idx_header(0x803, &[count, rows, cols]);
    bytes.extend_from_slice(pixels);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = idx_header(0x801, &[labels.len() as u32]);
    bytes.extend_from_slice(labels);
    bytes
}

/// Asserts the error's message names the file, so a user knows which one is bad.
fn assert_names(err: &DataError, path: &Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(err.to_string().contains(name), "{err} does not name {name}");
}

fn mean_times_255(ds: &InMemoryDataset) -> f64 {
    let values = ds.to_f32();
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64 * 255.0
}

/// A dataset of `n` samples of `shape` whose values are distinct (sample i, element k →
/// i + k/1000) and labels i % classes.
fn synthetic(n: usize, shape: [usize; 3], classes: usize) -> InMemoryDataset {
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

fn all_batches(loader: &DataLoader<InMemoryDataset>, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).collect()
}

/// Bitwise equality of batches (f32 `==` would equate 0.0 and -0.0).
fn assert_bit_identical(a: &[Batch], b: &[Batch]) {
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

// ---------------------------------------------------------------------------------------
// Real data shipped in the repository
// ---------------------------------------------------------------------------------------

#[test]
fn mnist_train_matches_published_statistics() {
    let ds = load("mnist", &repo_data("mnist"), Split::Train).unwrap();
    assert_eq!(ds.len(), 60_000);
    assert_eq!(ds.sample_shape(), [1, 28, 28]);
    assert_eq!(ds.num_classes(), 10);
    // Histogram and mean pixel (33.32 on 0..255, given to 2 decimals) from
    // shared/data/README.md.
    assert_eq!(
        ds.label_histogram(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    let mean = mean_times_255(&ds);
    assert!((mean - 33.32).abs() < 0.006, "mean pixel {mean}");
    // Pixels span 0..255, scaled by 1/255: exactly 0 and 1 at the ends.
    let (lo, hi) = ds
        .to_f32()
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert_eq!((lo, hi), (0.0, 1.0));
    assert_eq!(ds.class_names().unwrap()[7], "7");
}

#[test]
fn mnist_test_matches_published_statistics_raw_and_gz() {
    let ds = load("mnist", &repo_data("mnist"), Split::Test).unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.sample_shape(), [1, 28, 28]);
    // From shared/data/README.md.
    assert_eq!(
        ds.label_histogram(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let mean = mean_times_255(&ds);
    assert!((mean - 33.79).abs() < 0.006, "mean pixel {mean}");

    // The same files decompressed read identically (gzip is detected by content).
    let tmp = TempDir::new("mnist-raw");
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let gz = std::fs::read(repo_data("mnist").join(format!("{name}.gz"))).unwrap();
        tmp.write(name, &gunzip(&gz));
    }
    let raw = load("mnist", &tmp.0, Split::Test).unwrap();
    assert_eq!(raw, ds);
}

#[test]
fn fashion_mnist_when_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fashion-mnist");
    if !dir.is_dir() {
        println!("skipped: {} not present", dir.display());
        return;
    }
    // README: every class has 6,000 train and 1,000 test samples.
    let test = load("fashion-mnist", &dir, Split::Test).unwrap();
    assert_eq!(test.label_histogram(), [1000; 10]);
    assert_eq!(test.class_names().unwrap()[9], FASHION_MNIST_CLASSES[9]);
    let train = load("fashion-mnist", &dir, Split::Train).unwrap();
    assert_eq!(train.label_histogram(), [6000; 10]);
    assert_eq!(train.sample_shape(), [1, 28, 28]);
}

#[test]
fn digits_matches_published_statistics() {
    let ds = load("digits", &repo_data("digits"), Split::Train).unwrap();
    // 1,797 rows and the histogram from shared/data/README.md.
    assert_eq!(ds.len(), 1797);
    assert_eq!(ds.sample_shape(), [1, 8, 8]);
    assert_eq!(
        ds.label_histogram(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    // Values 0..=16 scaled by 1/16; 16 occurs, so the maximum is exactly 1.
    let values = ds.to_f32();
    let hi = values.iter().fold(0f32, |h, &v| h.max(v));
    assert_eq!(hi, 1.0);
    assert!(
        values
            .iter()
            .all(|v| (v * 16.0).fract() == 0.0 && *v >= 0.0)
    );
    let err = load("digits", &repo_data("digits"), Split::Test).unwrap_err();
    assert!(matches!(err, DataError::NoTestSplit { .. }), "{err}");
}

#[test]
fn unknown_names_and_missing_files() {
    let err = load("imagenet", Path::new("."), Split::Train).unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset { .. }), "{err}");
    let tmp = TempDir::new("missing");
    let err = load("mnist", &tmp.0, Split::Train).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// IDX: synthetic and corrupt files
// ---------------------------------------------------------------------------------------

#[test]
fn idx_reads_a_synthetic_pair_raw_and_gz() {
    let tmp = TempDir::new("idx-ok");
    // 3 images of 2x2, pixels 0, 51, 102, … (k·51), labels 2, 0, 9.
    let pixels: Vec<u8> = (0..12).map(|k| (k * 51 % 256) as u8).collect();
    let images = idx_images(3, 2, 2, &pixels);
    let labels = idx_labels(&[2, 0, 9]);
    let a = load_idx(&tmp.write("i", &images), &tmp.write("l", &labels), 10, None).unwrap();
    let b = load_idx(
        &tmp.write("i.gz", &gzip(&images)),
        &tmp.write("l.gz", &gzip(&labels)),
        10,
        None,
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.labels(), [2, 0, 9]);
    let sample = a.get(1);
    assert_eq!(sample.shape, [1, 2, 2]);
    // Image 1 holds pixels 4..8: 204, 255, 50 (306 mod 256), 101 (357 mod 256).
    assert_eq!(
        &*sample.data,
        &[204.0 / 255.0, 1.0, 50.0 / 255.0, 101.0 / 255.0]
    );
}

#[test]
fn idx_empty_file() {
    let tmp = TempDir::new("idx-empty");
    let path = tmp.write("empty", &[]);
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    assert_names(&err, &path);
    let err = read_idx_labels(&path, 10).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}

#[test]
fn idx_wrong_magic() {
    let tmp = TempDir::new("idx-magic");
    // A labels file given as images.
    let path = tmp.write("labels-as-images", &idx_labels(&[1, 2, 3]));
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
    // An images file given as labels.
    let path = tmp.write("images-as-labels", &idx_images(1, 1, 1, &[0]));
    let err = read_idx_labels(&path, 10).unwrap_err();
    assert!(
        matches!(err, DataError::BadMagic { found: 0x803, .. }),
        "{err}"
    );
    // Three bytes cannot even hold the magic number.
    let err = read_idx_images(&tmp.write("tiny", b"abc")).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 4,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn idx_truncated_and_trailing() {
    let tmp = TempDir::new("idx-trunc");
    // Header: 10 images of 4x4 = 160 pixel bytes; only 80 follow.
    let path = tmp.write("short", &idx_images(10, 4, 4, &[7; 80]));
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 176,
                found: 96,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
    // The same, gzip-compressed: found counts decompressed bytes.
    let path = tmp.write("short.gz", &gzip(&idx_images(10, 4, 4, &[7; 80])));
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 176,
                found: 96,
                ..
            }
        ),
        "{err}"
    );
    // Labels: header says 5, 3 follow.
    let mut labels = idx_labels(&[1, 2, 3]);
    labels[7] = 5;
    let err = read_idx_labels(&tmp.write("short-labels", &labels), 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 13,
                found: 11,
                ..
            }
        ),
        "{err}"
    );
    // A header cut inside its dimensions.
    let err = read_idx_images(&tmp.write("cut-header", &idx_header(0x803, &[1, 2]))).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    // Extra bytes after the described data.
    let err = read_idx_images(&tmp.write("long", &idx_images(1, 2, 2, &[0; 5]))).unwrap_err();
    assert!(
        matches!(err, DataError::TrailingData { expected: 20, .. }),
        "{err}"
    );
    let err =
        read_idx_images(&tmp.write("long.gz", &gzip(&idx_images(1, 2, 2, &[0; 5])))).unwrap_err();
    assert!(
        matches!(err, DataError::TrailingData { expected: 20, .. }),
        "{err}"
    );
}

#[test]
fn idx_absurd_dimensions_fail_fast_without_allocating() {
    let tmp = TempDir::new("idx-absurd");
    let start = Instant::now();
    let mut cases = Vec::new();
    // 2^31 images of 28x28 in a 100-byte file: 1.7 TB claimed, over the 2 GiB limit.
    let mut file = idx_header(0x803, &[1 << 31, 28, 28]);
    file.resize(100, 0);
    cases.push(tmp.write("absurd-count", &file));
    // 2^31 images of 1x1: exactly at the 2 GiB limit, so only the file length refutes it.
    let mut file = idx_header(0x803, &[1 << 31, 1, 1]);
    file.resize(100, 0);
    cases.push(tmp.write("count-vs-length", &file));
    // The same claims, gzip-compressed: ~100 compressed bytes expand to ~100 KB at most.
    cases.push(tmp.write("count-vs-length.gz", &gzip(&file)));
    // Sides of 2^20 pixels, and zero dimensions.
    cases.push(tmp.write("wide", &idx_header(0x803, &[1, 1, 1 << 20])));
    cases.push(tmp.write("zero-rows", &idx_header(0x803, &[5, 0, 28])));
    cases.push(tmp.write("zero-count", &idx_header(0x803, &[0, 28, 28])));
    for path in &cases {
        let err = read_idx_images(path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadHeader { .. }
                    | DataError::Truncated { .. }
                    | DataError::TooLarge { .. }
            ),
            "{}: {err}",
            path.display()
        );
        assert_names(&err, path);
    }
    // Labels: 2^31 claimed in a 100-byte file, raw and gz.
    let mut file = idx_header(0x801, &[1 << 31]);
    file.resize(100, 0);
    for path in [
        tmp.write("labels-count", &file),
        tmp.write("labels-count.gz", &gzip(&file)),
    ] {
        let err = read_idx_labels(&path, 10).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadHeader { .. } | DataError::Truncated { .. }
            ),
            "{err}"
        );
    }
    // Allocating and zeroing 2 GiB would take far longer than this; the checks take µs.
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn idx_labels_out_of_range() {
    let tmp = TempDir::new("idx-labels");
    let path = tmp.write("labels", &idx_labels(&[0, 9, 10, 3]));
    let err = read_idx_labels(&path, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 2,
                label: 10,
                num_classes: 10,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
}

#[test]
fn idx_count_mismatch_between_images_and_labels() {
    let tmp = TempDir::new("idx-mismatch");
    let images = tmp.write("i", &idx_images(3, 1, 1, &[1, 2, 3]));
    let labels = tmp.write("l", &idx_labels(&[1, 2]));
    let err = load_idx(&images, &labels, 10, None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                image_count: 3,
                label_count: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn gzip_problems() {
    let tmp = TempDir::new("gz");
    // Not gzip at all, but named .gz.
    let path = tmp.write("garbage.gz", b"this is not gzip data at all");
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(err, DataError::NotGzip { .. }), "{err}");
    assert_names(&err, &path);
    // The gzip magic followed by garbage.
    let mut bytes = vec![0x1f, 0x8b];
    bytes.extend_from_slice(&[0xAB; 60]);
    let err = read_idx_images(&tmp.write("magic-then-garbage.gz", &bytes)).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
    // A real gzip stream cut in half.
    let pixels: Vec<u8> = (0..4000u32).map(|k| (k * 7919 % 251) as u8).collect();
    let good = gzip(&idx_images(10, 20, 20, &pixels));
    let path = tmp.write("cut.gz", &good[..good.len() / 2]);
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(err, DataError::Gzip { .. } | DataError::Truncated { .. }),
        "{err}"
    );
    // A wrong CRC in the trailer (last 8 bytes: CRC32, then the length).
    let mut bad_crc = good.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xFF;
    let err = read_idx_images(&tmp.write("bad-crc.gz", &bad_crc)).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
    // The intact stream reads.
    assert_eq!(
        read_idx_images(&tmp.write("good.gz", &good))
            .unwrap()
            .pixels,
        pixels
    );
}

// ---------------------------------------------------------------------------------------
// CIFAR-10 on files written in its exact binary format
// ---------------------------------------------------------------------------------------

/// One CIFAR-10 record: label, then R, G, B planes of 32x32. Pixel k of the record is
/// (k + 3·seed) mod 256, so every record and channel is distinguishable.
fn cifar_record(label: u8, seed: usize) -> Vec<u8> {
    let mut record = vec![label];
    record.extend((0..3072).map(|k| ((k + 3 * seed) % 256) as u8));
    record
}

#[test]
fn cifar10_reads_synthetic_batches() {
    let tmp = TempDir::new("cifar");
    let dir = tmp.0.join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    // Batch b holds records 2b and 2b+1, labelled (2b + r) % 10.
    for b in 0..5 {
        let mut bytes = Vec::new();
        for r in 0..2 {
            let i = 2 * b + r;
            bytes.extend(cifar_record((i % 10) as u8, i));
        }
        std::fs::write(dir.join(format!("data_batch_{}.bin", b + 1)), &bytes).unwrap();
    }
    let test: Vec<u8> = (0..3)
        .flat_map(|i| cifar_record(9 - i as u8, 100 + i))
        .collect();
    std::fs::write(dir.join("test_batch.bin"), gzip(&test)).unwrap();

    let train = load("cifar10", &tmp.0, Split::Train).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(train.sample_shape(), [3, 32, 32]);
    assert_eq!(train.labels(), (0..10).collect::<Vec<_>>());
    assert_eq!(train.class_names().unwrap()[3], CIFAR10_CLASSES[3]);
    // Sample 7: pixel k = (k + 21) % 256. Channel 1 (green) starts at k = 1024 → 1045 % 256 = 21.
    let s = train.get(7);
    assert_eq!(s.data[0], 21.0 / 255.0);
    assert_eq!(s.data[1024], 21.0 / 255.0);
    assert_eq!(
        s.data[1024 + 32 + 1],
        ((1024 + 33 + 21) % 256) as f32 / 255.0
    );
    // The test batch was gzipped: detected by content.
    let test = load("cifar10", &dir, Split::Test).unwrap();
    assert_eq!(test.labels(), [9, 8, 7]);
}

#[test]
fn cifar10_corrupt_files() {
    let tmp = TempDir::new("cifar-bad");
    let read = |name: &str, bytes: &[u8]| {
        let path = tmp.write(name, bytes);
        let err = ventral_nn::data::read_cifar10_batch(&path).unwrap_err();
        assert_names(&err, &path);
        err
    };
    // Two records and 5 bytes of a third.
    let mut bytes = [cifar_record(1, 0), cifar_record(2, 1)].concat();
    bytes.extend_from_slice(&[0; 5]);
    let err = read("partial.bin", &bytes);
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 9219,
                found: 6151,
                ..
            }
        ),
        "{err}"
    );
    let err = read(
        "label.bin",
        &[cifar_record(3, 0), cifar_record(10, 1)].concat(),
    );
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
    let err = read("empty.bin", &[]);
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    let err = read("garbage.bin.gz", &[0x42; 3073]);
    assert!(matches!(err, DataError::NotGzip { .. }), "{err}");
    // A missing batch file is named.
    std::fs::write(tmp.0.join("data_batch_1.bin"), cifar_record(0, 0)).unwrap();
    let err = load("cifar10", &tmp.0, Split::Train).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("data_batch_2.bin"), "{err}");
}

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

#[test]
fn csv_with_and_without_header() {
    let tmp = TempDir::new("csv");
    let with = read_csv(&tmp.write("h.csv", b"x1, x2, class\n1.5, -2, 0\n3, 4e1, 1\n")).unwrap();
    let without = read_csv(&tmp.write("n.csv", b"1.5,-2,0\r\n\r\n3,40,1\r\n")).unwrap();
    assert_eq!(with, without);
    assert_eq!(with.len(), 2);
    assert_eq!(with.sample_shape(), [2, 1, 1]);
    // Generic CSV keeps its values as `f32`.
    assert_eq!(with.as_f32(), Some(&[1.5, -2.0, 3.0, 40.0][..]));
    assert_eq!(with.as_u8(), None);
    assert_eq!(with.to_f32(), [1.5, -2.0, 3.0, 40.0]);
    assert_eq!(with.labels(), [0, 1]);
    assert_eq!(with.num_classes(), 2);
    assert_eq!(with.class_names(), None);
    // Integer classes are labels as they are: class 4 means 5 classes.
    let sparse = read_csv(&tmp.write("s.csv", b"0,4\n1,1\n")).unwrap();
    assert_eq!((sparse.labels(), sparse.num_classes()), (&[4, 1][..], 5));
    // Gzip-compressed and through `load`.
    let gz = load("csv:h.csv.gz", &tmp.0, Split::Train);
    assert!(matches!(gz, Err(DataError::Io { .. })), "no such file yet");
    tmp.write("h.csv.gz", &gzip(b"x1,x2,class\n1.5,-2,0\n3,40,1\n"));
    assert_eq!(load("csv:h.csv.gz", &tmp.0, Split::Train).unwrap(), with);
}

#[test]
fn csv_string_classes_in_order_of_first_appearance() {
    let tmp = TempDir::new("csv-str");
    let text = b"sepal,petal,species\n5.1,1.4,setosa\n7.0,4.7,versicolor\n5.0,1.5,setosa\n6.3,6.0,virginica\n";
    let ds = read_csv(&tmp.write("iris.csv", text)).unwrap();
    assert_eq!(ds.labels(), [0, 1, 0, 2]);
    assert_eq!(
        ds.class_names().unwrap(),
        ["setosa", "versicolor", "virginica"]
    );
    // Without a header; a number among names is a name too.
    let ds = read_csv(&tmp.write("mixed.csv", b"1,b\n2,1\n3,b\n")).unwrap();
    assert_eq!(ds.labels(), [0, 1, 0]);
    assert_eq!(ds.class_names().unwrap(), ["b", "1"]);
}

#[test]
fn csv_errors_name_the_line() {
    let tmp = TempDir::new("csv-bad");
    let check = |name: &str, text: &[u8], line: usize, needle: &str| {
        let path = tmp.write(name, text);
        let err = read_csv(&path).unwrap_err();
        assert!(
            matches!(err, DataError::Csv { line: l, .. } if l == line),
            "{name}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("line {line}")) && message.contains(needle),
            "{message}"
        );
        assert_names(&err, &path);
    };
    check("ragged.csv", b"a,b,c\n1,2,0\n3,0\n", 3, "expected 3 fields");
    check(
        "ragged-long.csv",
        b"1,2,0\n3,4,1\n\n5,6,7,1\n",
        4,
        "found 4",
    );
    check("text.csv", b"1,2,0\n3,oops,1\n", 2, "oops");
    check("nan.csv", b"1,2,0\n3,NaN,1\n", 2, "not a finite number");
    check("empty-class.csv", b"1,2,0\n3,4,\n", 2, "class is empty");
    check("huge-class.csv", b"1,0\n2,99999999\n", 2, "out of range");
    check("one-column.csv", b"1\n2\n", 1, "at least 2 fields");
    check("header-only.csv", b"x,y,class\n", 1, "no data rows");
    check("blank.csv", b"\n  \n", 1, "no data rows");
    check("latin1.csv", b"1,2,0\n3,4,caf\xe9\n", 2, "UTF-8");
    let err = read_csv(&tmp.write("empty.csv", b"")).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    let err = read_csv(&tmp.write("fake.csv.gz", b"1,2,0\n")).unwrap_err();
    assert!(matches!(err, DataError::NotGzip { .. }), "{err}");
}

#[test]
fn digits_csv_errors() {
    let tmp = TempDir::new("digits-bad");
    let row = |pixel: &str, label: &str| {
        let mut fields = vec!["0"; 64];
        fields[5] = pixel;
        format!("{},{label}\n", fields.join(","))
    };
    let good = row("16", "9");
    let ds = read_digits_csv(&tmp.write("ok.csv", good.as_bytes())).unwrap();
    assert_eq!((ds.len(), ds.labels()[0], ds.get(0).data[5]), (1, 9, 1.0));
    for (name, text, line, needle) in [
        (
            "value.csv",
            format!("{good}{}", row("17", "1")),
            2,
            "field 6",
        ),
        (
            "label.csv",
            format!("{good}{good}{}", row("3", "10")),
            3,
            "label",
        ),
        ("short.csv", "1,2,3\n".to_string(), 1, "expected 65 fields"),
    ] {
        let err = read_digits_csv(&tmp.write(name, text.as_bytes())).unwrap_err();
        assert!(
            matches!(err, DataError::Csv { line: l, .. } if l == line),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(needle), "{err}");
    }
    let err = read_digits_csv(&tmp.write("empty.csv", b"")).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    let err = read_digits_csv(&tmp.write("garbage.csv.gz", b"0,0,0")).unwrap_err();
    assert!(matches!(err, DataError::NotGzip { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// Dataset and DataLoader
// ---------------------------------------------------------------------------------------

#[test]
fn dataset_constructor_validates() {
    let ok = InMemoryDataset::new([1, 1, 2], vec![0.0; 4], vec![0, 1], 2, None);
    assert!(ok.is_ok());
    for bad in [
        InMemoryDataset::new([1, 1, 2], vec![0.0; 5], vec![0, 1], 2, None),
        InMemoryDataset::new([1, 1, 2], vec![0.0; 4], vec![0, 2], 2, None),
        InMemoryDataset::new([0, 1, 2], vec![], vec![], 2, None),
        InMemoryDataset::new(
            [1, 1, 2],
            vec![0.0; 4],
            vec![0, 1],
            2,
            Some(vec!["a".into()]),
        ),
    ] {
        assert!(matches!(bad, Err(DataError::Invalid(_))), "{bad:?}");
    }
    let ds = synthetic(5, [1, 1, 1], 3);
    let sub = ds.subset(&[4, 0, 4]).unwrap();
    assert_eq!(
        (sub.to_f32(), sub.labels()),
        (vec![4.0, 0.0, 4.0], &[1, 0, 1][..])
    );
    assert!(ds.subset(&[5]).is_err());
}

#[test]
fn batch_sizes_and_drop_last() {
    let ds = synthetic(10, [1, 2, 3], 4);
    let loader = DataLoader::new(ds.clone(), 3).unwrap();
    let batches = all_batches(&loader, 0);
    // 10 = 3 + 3 + 3 + 1.
    let sizes: Vec<usize> = batches.iter().map(|b| b.shape[0]).collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    assert_eq!(loader.num_batches(), 4);
    assert_eq!(batches[3].shape, [1, 1, 2, 3]);
    assert_eq!(batches[3].inputs.len(), 6);
    // Unshuffled, untransformed: the batches are the dataset's bytes in order.
    let inputs: Vec<f32> = batches.iter().flat_map(|b| b.inputs.clone()).collect();
    assert_eq!(inputs, ds.to_f32());
    let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    assert_eq!(labels, ds.labels());

    let dropping = DataLoader::new(ds.clone(), 3).unwrap().drop_last();
    let sizes: Vec<usize> = all_batches(&dropping, 0)
        .iter()
        .map(|b| b.shape[0])
        .collect();
    assert_eq!(sizes, [3, 3, 3]);
    assert_eq!(dropping.epoch(0).len(), 3);
    // A batch larger than the dataset: one short batch, or none when dropping.
    assert_eq!(
        all_batches(&DataLoader::new(ds.clone(), 20).unwrap(), 0).len(),
        1
    );
    assert_eq!(
        all_batches(&DataLoader::new(ds.clone(), 20).unwrap().drop_last(), 0).len(),
        0
    );
    assert!(matches!(DataLoader::new(ds, 0), Err(DataError::Invalid(_))));
}

#[test]
fn shuffling_is_a_deterministic_permutation_per_epoch() {
    let ds = synthetic(100, [1, 1, 1], 10);
    let a = DataLoader::new(ds.clone(), 7).unwrap().shuffle().seed(42);
    let b = DataLoader::new(ds.clone(), 7).unwrap().shuffle().seed(42);
    let other_seed = DataLoader::new(ds.clone(), 7).unwrap().shuffle().seed(43);
    assert_eq!(a.order(0), b.order(0));
    assert_eq!(a.order(5), b.order(5));
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(a.order(0), other_seed.order(0));
    assert_ne!(a.order(0), (0..100).collect::<Vec<_>>());
    for epoch in 0..20 {
        // The batches visit exactly the order, and every index exactly once.
        let visited: Vec<usize> = a.epoch(epoch).flat_map(|b| b.indices).collect();
        assert_eq!(visited, a.order(epoch));
        let mut sorted = visited;
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
    // Labels travel with their samples (label = index % 10 by construction).
    for batch in a.epoch(3) {
        assert!(
            batch
                .indices
                .iter()
                .zip(&batch.labels)
                .all(|(i, l)| i % 10 == *l)
        );
    }
    // Uniformity: over 2000 epochs each of 10 indices comes first ≈200 times
    // (binomial σ ≈ 13.4; 140..260 is ±4.5σ).
    let small = DataLoader::new(synthetic(10, [1, 1, 1], 1), 1)
        .unwrap()
        .shuffle()
        .seed(9);
    let mut first = [0usize; 10];
    for epoch in 0..2000 {
        first[small.order(epoch)[0]] += 1;
    }
    assert!(first.iter().all(|c| (140..260).contains(c)), "{first:?}");
}

#[test]
fn shuffled_order_is_stable_across_versions() {
    // Computed by an independent Python transcription of the documented algorithm
    // (SplitMix64 keyed by seed 42, stream 1 = shuffle, epoch 0; Lemire's bounded integers;
    // Fisher–Yates from the last position). A checkpoint's data order depends on it: if this
    // changes, resumed runs and saved orders change meaning.
    let loader = DataLoader::new(synthetic(10, [1, 1, 1], 1), 4)
        .unwrap()
        .shuffle()
        .seed(42);
    assert_eq!(loader.order(0), GOLDEN_ORDER_SEED42_EPOCH0);
}

const GOLDEN_ORDER_SEED42_EPOCH0: [usize; 10] = [9, 0, 2, 1, 4, 7, 5, 6, 3, 8];

#[test]
fn background_batches_are_bit_identical_to_inline() {
    let ds = synthetic(53, [3, 5, 4], 7);
    let (mean, std) = ds.channel_mean_std();
    let inline = DataLoader::new(ds, 8)
        .unwrap()
        .shuffle()
        .seed(1234)
        .random_crop(2)
        .horizontal_flip()
        .normalize(mean, std)
        .unwrap();
    let background = inline.clone().prefetch(Prefetch::Background);
    for epoch in 0..3 {
        assert_bit_identical(
            &all_batches(&inline, epoch),
            &all_batches(&background, epoch),
        );
    }
    // Abandoning an epoch early stops the thread (this would hang otherwise).
    let mut batches = background.epoch(0);
    assert!(batches.next().is_some());
    drop(batches);
}

#[test]
fn resume_mid_epoch_continues_exactly() {
    let ds = synthetic(23, [1, 4, 4], 3);
    for prefetch in [Prefetch::Inline, Prefetch::Background] {
        let loader = DataLoader::new(ds.clone(), 5)
            .unwrap()
            .shuffle()
            .seed(5)
            .random_crop(1)
            .horizontal_flip()
            .prefetch(prefetch);
        let straight = all_batches(&loader, 2);
        // Stop after two batches, "save" epoch, order and position, then resume.
        let mut first = loader.epoch(2);
        let mut resumed: Vec<Batch> = first.by_ref().take(2).collect();
        let (epoch, order, next) = (first.epoch(), first.order().to_vec(), first.next_batch());
        drop(first);
        assert_eq!(next, 2);
        resumed.extend(loader.resume(epoch, order, next).unwrap());
        assert_bit_identical(&straight, &resumed);
        // A saved order that is not a permutation, or a position past the end, is refused.
        let mut bad = loader.order(2);
        bad[0] = bad[1];
        assert!(matches!(
            loader.resume(2, bad, 0),
            Err(DataError::Invalid(_))
        ));
        assert!(matches!(
            loader.resume(2, vec![0; 3], 0),
            Err(DataError::Invalid(_))
        ));
        assert!(matches!(
            loader.resume(2, loader.order(2), 6),
            Err(DataError::Invalid(_))
        ));
    }
}

#[test]
fn normalisation_per_channel() {
    // Two channels of 1x2: channel 0 holds 0.5 and 1.0, channel 1 holds 0.0 and 0.2.
    let ds = InMemoryDataset::new([2, 1, 2], vec![0.5, 1.0, 0.0, 0.2], vec![0], 1, None).unwrap();
    // (x − mean) / std with mean (0.5, 0.1), std (0.25, 0.5): 0, 2, −0.2, 0.2 (f32 rounding
    // of the same expressions, so compared exactly).
    let loader = DataLoader::new(ds.clone(), 1)
        .unwrap()
        .normalize(vec![0.5, 0.1], vec![0.25, 0.5])
        .unwrap();
    let batch = loader.epoch(0).next().unwrap();
    let expected = [0.0f32, 2.0, (0.0f32 - 0.1) / 0.5, (0.2f32 - 0.1) / 0.5];
    assert_eq!(batch.inputs, expected);
    // Channel statistics of the same data: channel 0 mean 0.75, population std 0.25;
    // channel 1 mean 0.1, std 0.1.
    let (mean, std) = ds.channel_mean_std();
    assert!(
        (mean[0] - 0.75).abs() < 1e-6 && (std[0] - 0.25).abs() < 1e-6,
        "{mean:?} {std:?}"
    );
    assert!(
        (mean[1] - 0.1).abs() < 1e-6 && (std[1] - 0.1).abs() < 1e-6,
        "{mean:?} {std:?}"
    );
    // Wrong channel count, zero or non-finite std.
    let err = DataLoader::new(ds.clone(), 1)
        .unwrap()
        .normalize(vec![0.5], vec![1.0])
        .unwrap_err();
    assert!(err.to_string().contains("2 channels"), "{err}");
    assert!(
        DataLoader::new(ds.clone(), 1)
            .unwrap()
            .normalize(vec![0.0, 0.0], vec![1.0, 0.0])
            .is_err()
    );
    assert!(
        DataLoader::new(ds, 1)
            .unwrap()
            .normalize(vec![0.0, 0.0], vec![1.0, f32::NAN])
            .is_err()
    );
}

#[test]
fn flip_and_crop_of_a_known_image() {
    // A 1x3x3 image holding 1..9 row by row.
    let image: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let shape = [1, 3, 3];
    let mut flipped = image.clone();
    flip_horizontal(&mut flipped, shape);
    assert_eq!(flipped, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0]);

    let mut out = vec![f32::NAN; 9];
    // Offsets (padding, padding) are the identity.
    crop_padded(&image, shape, 1, 1, 1, &mut out);
    assert_eq!(out, image);
    // (0, 0): the window starts in the padding's top-left corner, shifting the image down-right.
    crop_padded(&image, shape, 1, 0, 0, &mut out);
    assert_eq!(out, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 4.0, 5.0]);
    // (2, 2) with padding 1: shifted up-left.
    crop_padded(&image, shape, 1, 2, 2, &mut out);
    assert_eq!(out, [5.0, 6.0, 0.0, 8.0, 9.0, 0.0, 0.0, 0.0, 0.0]);
    // (0, 2): down and left.
    crop_padded(&image, shape, 1, 0, 2, &mut out);
    assert_eq!(out, [0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0]);
}

/// The shift (dy, dx) with `out[y][x] = src[y − dy][x − dx]` (0 outside), if any in ±`max`.
fn find_shift(src: &[f32], out: &[f32], h: usize, w: usize, max: isize) -> Option<(isize, isize)> {
    let at = |y: isize, x: isize| {
        if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
            src[y as usize * w + x as usize]
        } else {
            0.0
        }
    };
    (-max..=max)
        .flat_map(|dy| (-max..=max).map(move |dx| (dy, dx)))
        .find(|&(dy, dx)| {
            (0..h as isize).all(|y| {
                (0..w as isize).all(|x| out[y as usize * w + x as usize] == at(y - dy, x - dx))
            })
        })
}

#[test]
fn loader_augmentation_flips_and_crops_as_specified() {
    // 64 copies of one 1x3x4 image with distinct non-zero values 1..12.
    let image: Vec<f32> = (1..=12).map(|v| v as f32).collect();
    let data: Vec<f32> = image.iter().cycle().take(64 * 12).copied().collect();
    let ds = InMemoryDataset::new([1, 3, 4], data, vec![0; 64], 1, None).unwrap();
    let mut mirrored = image.clone();
    flip_horizontal(&mut mirrored, [1, 3, 4]);

    // Flip only: each output is the image or its mirror, and both occur (each sample flips
    // with probability ½, so all 64 alike has probability 2^-63).
    let flips = DataLoader::new(ds.clone(), 16)
        .unwrap()
        .seed(3)
        .horizontal_flip();
    let (mut plain, mut flipped) = (0, 0);
    for batch in flips.epoch(0) {
        assert_eq!(batch.shape, [16, 1, 3, 4]);
        for sample in batch.inputs.chunks_exact(12) {
            if sample == image.as_slice() {
                plain += 1;
            } else {
                assert_eq!(sample, mirrored.as_slice());
                flipped += 1;
            }
        }
    }
    assert_eq!(plain + flipped, 64);
    assert!(plain > 0 && flipped > 0, "{plain} plain, {flipped} flipped");

    // Crop only, padding 2: each output is the image translated by at most 2 each way, zero
    // filled, and several different shifts occur (25 are possible).
    let crops = DataLoader::new(ds, 64).unwrap().seed(4).random_crop(2);
    let batch = crops.epoch(0).next().unwrap();
    assert_eq!(batch.shape, [64, 1, 3, 4]);
    let mut shifts = std::collections::HashSet::new();
    for sample in batch.inputs.chunks_exact(12) {
        let shift = find_shift(&image, sample, 3, 4, 2).expect("output is not a padded shift");
        shifts.insert(shift);
    }
    assert!(shifts.len() >= 10, "only {} distinct shifts", shifts.len());
    // Another epoch draws other crops.
    let again = crops.epoch(1).next().unwrap();
    assert_ne!(again.inputs, batch.inputs);
}

#[test]
fn mnist_through_the_loader() {
    // The whole pipeline on real data: normalised with its own statistics, one epoch of the
    // test set in the background, every sample once.
    let ds = load("mnist", &repo_data("mnist"), Split::Test).unwrap();
    let (mean, std) = ds.channel_mean_std();
    // MNIST's widely quoted normalisation constants are 0.1307 and 0.3081 (train set);
    // the test set's are close: mean 33.79/255 = 0.1325 (README).
    assert!((mean[0] - 33.79 / 255.0).abs() < 1e-4, "{mean:?}");
    assert!((std[0] - 0.31).abs() < 0.01, "{std:?}");
    let loader = DataLoader::new(ds, 1000)
        .unwrap()
        .shuffle()
        .seed(1)
        .normalize(mean, std)
        .unwrap()
        .prefetch(Prefetch::Background);
    let mut count = 0;
    let mut sum = 0f64;
    for batch in loader.epoch(0) {
        assert_eq!(batch.shape, [1000, 1, 28, 28]);
        count += batch.labels.len();
        sum += batch.inputs.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    assert_eq!(count, 10_000);
    // Normalised with its own mean, the data averages ≈ 0.
    assert!((sum / (10_000.0 * 784.0)).abs() < 1e-3);
}

// ---------------------------------------------------------------------------------------
// Compact (byte) storage: bit-identical to the f32 values the readers used to store
// ---------------------------------------------------------------------------------------

/// The dataset the readers built before byte storage: every pixel scaled up front by exactly
/// the expression they used (`f32::from(p) / 255.0`, or `/ f32::from(16u8)` for digits).
fn old_f32_dataset(ds: &InMemoryDataset, old_scale: impl Fn(u8) -> f32) -> InMemoryDataset {
    let (bytes, _) = ds.as_u8().expect("a reader's dataset stores bytes");
    InMemoryDataset::new(
        ds.sample_shape(),
        bytes.iter().map(|&p| old_scale(p)).collect(),
        ds.labels().to_vec(),
        ds.num_classes(),
        ds.class_names().map(<[String]>::to_vec),
    )
    .unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Asserts that `compact` and `old` give bit-identical statistics, samples and batches, plain
/// and through every transform, inline and in the background.
fn assert_same_as_old(compact: &InMemoryDataset, old: &InMemoryDataset, batch_size: usize) {
    assert_eq!(bits(&compact.to_f32()), bits(old.as_f32().unwrap()));
    let (mean, std) = compact.channel_mean_std();
    let (old_mean, old_std) = old.channel_mean_std();
    assert_eq!((bits(&mean), bits(&std)), (bits(&old_mean), bits(&old_std)));
    for index in [0, compact.len() / 2, compact.len() - 1] {
        assert_eq!(compact.get(index), old.get(index));
        assert_eq!(bits(&compact.sample(index)), bits(&old.sample(index)));
    }
    let plain = |ds: &InMemoryDataset| DataLoader::new(ds.clone(), batch_size).unwrap();
    assert_bit_identical(
        &all_batches(&plain(compact), 0),
        &all_batches(&plain(old), 0),
    );
    let augmented = |ds: &InMemoryDataset, prefetch| {
        DataLoader::new(ds.clone(), batch_size)
            .unwrap()
            .shuffle()
            .seed(77)
            .random_crop(2)
            .horizontal_flip()
            .normalize(mean.clone(), std.clone())
            .unwrap()
            .prefetch(prefetch)
    };
    assert_bit_identical(
        &all_batches(&augmented(compact, Prefetch::Background), 1),
        &all_batches(&augmented(old, Prefetch::Inline), 1),
    );
}

#[test]
fn mnist_bytes_are_bit_identical_to_the_old_f32_formula() {
    let ds = load("mnist", &repo_data("mnist"), Split::Test).unwrap();
    let (bytes, divisor) = ds.as_u8().unwrap();
    assert_eq!(divisor, 255.0);
    assert_eq!(ds.as_f32(), None);
    // The stored bytes are the file's pixels, untouched.
    let file = read_idx_images(&repo_data("mnist").join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(bytes, file.pixels.as_slice());
    let old = old_f32_dataset(&ds, |p| f32::from(p) / 255.0);
    assert_same_as_old(&ds, &old, 1000);
    // One byte per value: 7.84 MB of pixels and 80 kB of labels, a quarter of the f32 size.
    assert!(
        ds.heap_bytes() < 7_840_000 + 80_000 + 1000,
        "{}",
        ds.heap_bytes()
    );
    assert!(ds.heap_bytes() * 3 < old.heap_bytes());
    // A subset keeps byte storage and the same values.
    let picks = [9999, 0, 17, 17];
    let sub = ds.subset(&picks).unwrap();
    assert!(sub.as_u8().is_some());
    assert_eq!(sub, ds.subset(&picks).unwrap());
    assert_eq!(
        bits(&sub.to_f32()),
        bits(&old.subset(&picks).unwrap().to_f32())
    );
}

#[test]
fn digits_bytes_are_bit_identical_to_the_old_f32_formula() {
    let ds = load("digits", &repo_data("digits"), Split::Train).unwrap();
    assert_eq!(ds.as_u8().unwrap().1, 16.0);
    let old = old_f32_dataset(&ds, |v| f32::from(v) / f32::from(16u8));
    assert_same_as_old(&ds, &old, 64);
}

#[test]
fn cifar_bytes_are_bit_identical_to_the_old_f32_formula() {
    let tmp = TempDir::new("cifar-bits");
    // Two files of 3 and 2 records covering every byte value; the second gzipped.
    let first: Vec<u8> = (0..3).flat_map(|i| cifar_record(i as u8, i)).collect();
    let second: Vec<u8> = (3..5).flat_map(|i| cifar_record(i as u8, 50 * i)).collect();
    let paths = [
        tmp.write("a.bin", &first),
        tmp.write("b.bin.gz", &gzip(&second)),
    ];
    let ds = ventral_nn::data::load_cifar10_files(&paths).unwrap();
    assert_eq!(ds.len(), 5);
    let (bytes, divisor) = ds.as_u8().unwrap();
    assert_eq!(divisor, 255.0);
    // The records without their label bytes, back to back.
    let expected: Vec<u8> = first
        .chunks(3073)
        .chain(second.chunks(3073))
        .flat_map(|r| r[1..].to_vec())
        .collect();
    assert_eq!(bytes, expected.as_slice());
    // Pixels held once, with no spare capacity; labels as usize; ten class names.
    let names: usize = CIFAR10_CLASSES
        .iter()
        .map(|n| n.len() + size_of::<String>())
        .sum();
    assert_eq!(ds.heap_bytes(), 5 * 3072 + 5 * 8 + names);
    let old = old_f32_dataset(&ds, |p| f32::from(p) / 255.0);
    assert_same_as_old(&ds, &old, 2);
    // Every byte value converts exactly as the old division (not as a multiplication by
    // 1/255, which differs for some bytes).
    let all: Vec<u8> = (0..=255).collect();
    let one = InMemoryDataset::from_u8([1, 16, 16], all, 255.0, vec![0], 1, None).unwrap();
    let expected: Vec<u32> = (0..=255u8)
        .map(|p| (f32::from(p) / 255.0).to_bits())
        .collect();
    assert_eq!(bits(&one.sample(0)), expected);
    let batch = DataLoader::new(one, 1).unwrap().epoch(0).next().unwrap();
    assert_eq!(bits(&batch.inputs), expected);
}

#[test]
fn from_u8_validates() {
    for divisor in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let bad = InMemoryDataset::from_u8([1, 1, 2], vec![0; 2], divisor, vec![0], 1, None);
        assert!(matches!(bad, Err(DataError::Invalid(_))), "{divisor}");
    }
    let bad = InMemoryDataset::from_u8([1, 1, 2], vec![0; 3], 255.0, vec![0], 1, None);
    assert!(matches!(bad, Err(DataError::Invalid(_))));
    // Byte and f32 storage of the same values are different datasets for `==`.
    let bytes = InMemoryDataset::from_u8([1, 1, 2], vec![0, 2], 2.0, vec![0], 1, None).unwrap();
    let floats = InMemoryDataset::new([1, 1, 2], vec![0.0, 1.0], vec![0], 1, None).unwrap();
    assert_eq!(bytes.to_f32(), floats.to_f32());
    assert_ne!(bytes, floats);
}

/// The process's peak and current resident memory from `/proc/self/status`, in KiB (Linux).
fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

#[test]
fn mnist_memory_footprint() {
    // Run alone (`cargo test --test data mnist_memory_footprint -- --nocapture`) for a
    // meaningful peak: other tests share the process.
    let before = resident_kib();
    let train = load("mnist", &repo_data("mnist"), Split::Train).unwrap();
    let test = load("mnist", &repo_data("mnist"), Split::Test).unwrap();
    let after = resident_kib();
    let (train_bytes, test_bytes) = (train.heap_bytes(), test.heap_bytes());
    println!(
        "MNIST heap: train {train_bytes} B, test {test_bytes} B, total {} B ({:.1} MiB); \
         f32 storage would be {} B; resident (peak, current) KiB before {before:?}, after \
         {after:?}",
        train_bytes + test_bytes,
        (train_bytes + test_bytes) as f64 / (1 << 20) as f64,
        (train.len() + test.len()) * 784 * 4
    );
    // 70,000 images of 784 bytes and 70,000 labels of 8 bytes, plus ten class names.
    let exact = 70_000 * 784 + 70_000 * 8;
    assert!(
        (exact..exact + 1000).contains(&(train_bytes + test_bytes)),
        "{}",
        train_bytes + test_bytes
    );
}
