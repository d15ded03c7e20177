//! Tests of `ventral_nn::data`'s datasets and DataLoader: batching, order, prefetching,
//! transforms, compact storage and memory. Expected values follow from how each test builds
//! its data (said next to each).
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
    let err = ds.subset(&[5]).unwrap_err().to_string();
    assert!(err.contains("subset index 5 is outside 0..5"), "{err}");
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
fn shards_put_together_are_the_whole_batches() {
    // 23 samples in batches of 6: three whole batches and a last one of 5, which 3 shards
    // split 1 + 2 + 2 (rows ⌊5·i/3⌋ ..). With augmentation: a sample's crop and flip depend
    // on its position in the epoch, not on the shard that loads it.
    let ds = synthetic(23, [2, 4, 4], 3);
    let whole = DataLoader::new(ds, 6)
        .unwrap()
        .shuffle()
        .seed(9)
        .random_crop(1)
        .horizontal_flip();
    for count in [1, 2, 3, 7] {
        let shards: Vec<Vec<Batch>> = (0..count)
            .map(|i| {
                let shard = whole.clone().shard(i, count).unwrap();
                let resumed = shard.resume(1, whole.order(1), 0).unwrap();
                let straight = all_batches(&shard.prefetch(Prefetch::Background), 1);
                assert_bit_identical(&straight, &resumed.collect::<Vec<_>>());
                straight
            })
            .collect();
        for (b, batch) in all_batches(&whole, 1).into_iter().enumerate() {
            let parts: Vec<&Batch> = shards.iter().map(|s| &s[b]).collect();
            assert_eq!(whole.batch_len(b), batch.labels.len());
            let concat = |f: fn(&Batch) -> Vec<f32>| -> Vec<f32> {
                parts.iter().flat_map(|p| f(p)).collect()
            };
            assert_eq!(concat(|p| p.inputs.clone()), batch.inputs);
            let indices: Vec<usize> = parts.iter().flat_map(|p| p.indices.clone()).collect();
            assert_eq!(indices, batch.indices);
            let sizes: Vec<usize> = parts.iter().map(|p| p.shape[0]).collect();
            let n = batch.shape[0];
            let expected: Vec<usize> = (0..count)
                .map(|i| n * (i + 1) / count - n * i / count)
                .collect();
            assert_eq!(sizes, expected, "{count} shards of batch {b}");
            assert!(parts.iter().all(|p| p.batch == b));
        }
    }
    assert_eq!(whole.batch_len(4), 0);
    assert!(matches!(
        whole.clone().shard(2, 2),
        Err(DataError::Invalid(_))
    ));
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
    // A constant channel names itself (a CSV's file and column, see tests/data.rs).
    let err = DataLoader::new(ds.clone(), 1)
        .unwrap()
        .normalize(vec![0.0, 0.5], vec![1.0, 0.0])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "channel 1 has the same value 0.5 in every sample (standard deviation 0), so it cannot be normalised; remove it"
    );
    let err = DataLoader::new(ds.clone(), 1)
        .unwrap()
        .normalize(vec![0.0, 0.0], vec![1.0, f32::NAN])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("normalize: standard deviation NaN is not finite and positive"),
        "{err}"
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
