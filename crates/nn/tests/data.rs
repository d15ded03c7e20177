//! Tests of `ventral_nn::data`'s readers: the real MNIST and digits files shipped in `data/`,
//! every reader on corrupt files, and CIFAR-10 and CSV on synthetic files in their exact formats.
//!
//! Expected values for the real datasets come from `shared/data/README.md` (which checked
//! them against the published MNIST counts and scikit-learn's description); expected values
//! for synthetic files follow from how the test wrote them (said next to each).
#![allow(unused_imports)]

mod data_common;

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

use data_common::*;

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
fn fashion_mnist_matches_published_statistics() {
    let dir = repo_data("fashion-mnist");
    // data/fashion-mnist/README.md: every class has 6,000 train and 1,000 test samples.
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
