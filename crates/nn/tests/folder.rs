//! Image folders: layout, labels and class names, grey/RGB conversion, skipped and strict
//! handling of bad files, the seeded validation split, statistics, and the loader's worker
//! threads (same batches as inline, bounded queue).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::ImageEncoder;
use ventral_nn::data::{
    ColorJitter, DataError, DataLoader, Dataset, FolderOptions, ImageFolder, Prefetch,
    RandomResizedCrop, Sample, open_image_folder,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-folder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `w × h` image whose pixel (x, y), channel k is `(seed + 3x + 5y + 7k) mod 256`.
fn pixels(w: u32, h: u32, channels: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            for k in 0..channels as u32 {
                out.push(((seed + 3 * x + 5 * y + 7 * k) % 256) as u8);
            }
        }
    }
    out
}

fn write_png(path: &Path, w: u32, h: u32, channels: usize, seed: u32) {
    let color = if channels == 1 {
        image::ColorType::L8
    } else {
        image::ColorType::Rgb8
    };
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&pixels(w, h, channels, seed), w, h, color)
        .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn write_jpeg(path: &Path, w: u32, h: u32, channels: usize, seed: u32) {
    let color = if channels == 1 {
        image::ColorType::L8
    } else {
        image::ColorType::Rgb8
    };
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
        .write_image(&pixels(w, h, channels, seed), w, h, color)
        .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// train/{dog,ant,cat} (sorted: ant, cat, dog) with grey and RGB PNGs and JPEGs of 6x4,
/// a file that is not an image under a .png name, a PNG cut after its header, a text file;
/// val/{ant,dog}.
fn tiny_folder(name: &str) -> PathBuf {
    let root = scratch(name);
    let t = root.join("train");
    write_png(&t.join("dog/a.png"), 6, 4, 1, 10);
    write_png(&t.join("dog/b.png"), 6, 4, 3, 20);
    write_jpeg(&t.join("ant/c.jpg"), 6, 4, 3, 30);
    write_png(&t.join("ant/d.PNG"), 6, 4, 1, 40);
    write_jpeg(&t.join("cat/e.jpeg"), 6, 4, 1, 50);
    write_png(&t.join("cat/f.png"), 6, 4, 3, 60);
    std::fs::write(t.join("cat/broken.png"), b"this is not an image").unwrap();
    std::fs::write(t.join("cat/notes.txt"), b"ignored").unwrap();
    // A real PNG cut short inside its pixel data: the header reads, the pixels do not.
    write_png(&t.join("dog/cut.png"), 16, 16, 3, 70);
    let full = std::fs::read(t.join("dog/cut.png")).unwrap();
    std::fs::write(t.join("dog/cut.png"), &full[..full.len() / 2]).unwrap();
    write_png(&root.join("val/ant/g.png"), 6, 4, 1, 80);
    write_png(&root.join("val/dog/h.png"), 6, 4, 3, 90);
    root
}

fn options(channels: usize) -> FolderOptions {
    FolderOptions {
        channels,
        size: None,
        strict: false,
        val_split: None,
        seed: 0,
    }
}

fn name_of(set: &ImageFolder, i: usize) -> String {
    set.files()[i]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn labels_and_class_names_come_from_sorted_folders() {
    let root = tiny_folder("labels");
    let (train, val, report) = open_image_folder(&root, &options(1)).unwrap();
    assert_eq!(train.class_names(), ["ant", "cat", "dog"]);
    let names: Vec<String> = (0..train.len()).map(|i| name_of(&train, i)).collect();
    // Class then name order; broken.png skipped for its header, notes.txt ignored; cut.png
    // has a good header and stays until verify().
    assert_eq!(
        names,
        [
            "c.jpg", "d.PNG", "e.jpeg", "f.png", "a.png", "b.png", "cut.png"
        ]
    );
    let labels: Vec<usize> = (0..train.len()).map(|i| train.get(i).label).collect();
    assert_eq!(labels, [0, 0, 1, 1, 2, 2, 2]);
    assert_eq!(report.ignored, 1);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].0.ends_with("cat/broken.png"));
    assert!(report.validation.ends_with("val"), "{}", report.validation);
    assert_eq!(val.class_names(), train.class_names());
    let val_labels: Vec<usize> = (0..val.len()).map(|i| val.get(i).label).collect();
    assert_eq!(val_labels, [0, 2]);
    assert_eq!(train.sample_shape(), [1, 4, 6]);
}

#[test]
fn grey_and_rgb_convert_to_the_model_channels() {
    let root = tiny_folder("channels");
    let (grey, _, _) = open_image_folder(&root, &options(1)).unwrap();
    let (rgb, _, _) = open_image_folder(&root, &options(3)).unwrap();
    // a.png (index 4) is grey: its own bytes, and copied to all three planes.
    let want: Vec<f32> = pixels(6, 4, 1, 10)
        .iter()
        .map(|&b| f32::from(b) / 255.0)
        .collect();
    assert_eq!(grey.get(4).data.as_ref(), want.as_slice());
    let three = rgb.get(4);
    assert_eq!(three.shape, [3, 4, 6]);
    for plane in three.data.chunks_exact(24) {
        assert_eq!(plane, want.as_slice());
    }
    // b.png (index 5) is RGB: as grey, Pillow's integer BT.601 luma of each pixel.
    let px = pixels(6, 4, 3, 20);
    let luma: Vec<f32> = px
        .chunks_exact(3)
        .map(|p| {
            let l = (19595 * u32::from(p[0])
                + 38470 * u32::from(p[1])
                + 7471 * u32::from(p[2])
                + 0x8000)
                >> 16;
            l as f32 / 255.0
        })
        .collect();
    assert_eq!(grey.get(5).data.as_ref(), luma.as_slice());
    // As RGB: the planes of the interleaved bytes.
    let rgb5 = rgb.get(5);
    for (k, plane) in rgb5.data.chunks_exact(24).enumerate() {
        let want: Vec<f32> = px
            .chunks_exact(3)
            .map(|p| f32::from(p[k]) / 255.0)
            .collect();
        assert_eq!(plane, want.as_slice());
    }
}

#[test]
fn verify_drops_undecodable_images_and_strict_makes_them_errors() {
    let root = tiny_folder("strict");
    let (mut train, _, _) = open_image_folder(&root, &options(1)).unwrap();
    assert_eq!(train.len(), 7);
    let (_, failed) = train.verify(2).unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].0.ends_with("dog/cut.png"), "{failed:?}");
    assert_eq!(train.len(), 6);
    assert!((0..6).all(|i| name_of(&train, i) != "cut.png"));

    // Strict: the header-garbage file stops opening, naming it.
    let strict = FolderOptions {
        strict: true,
        ..options(1)
    };
    let err = open_image_folder(&root, &strict).unwrap_err().to_string();
    assert!(
        err.contains("broken.png") && err.contains("not a PNG or JPEG"),
        "{err}"
    );
    // Without it, the cut file stops verify().
    std::fs::remove_file(root.join("train/cat/broken.png")).unwrap();
    let (mut train, _, _) = open_image_folder(&root, &strict).unwrap();
    let err = train.verify(1).unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }), "{err}");
    assert!(err.to_string().contains("cut.png"), "{err}");
    // A sample that fails later is written black and counted.
    let (train, _, _) = open_image_folder(&root, &options(1)).unwrap();
    let cut = (0..train.len())
        .find(|&i| name_of(&train, i) == "cut.png")
        .unwrap();
    let sample = train.get(cut);
    assert!(sample.data.iter().all(|&v| v == 0.0));
    assert_eq!(train.failures().count(), 1);
    assert!(train.failures().first()[0].contains("cut.png"));
}

#[test]
fn statistics_match_a_direct_computation_at_any_thread_count() {
    let root = scratch("stats");
    // 70 grey images (more than one block of 64) in two classes, of known bytes.
    for i in 0..70u32 {
        let class = if i % 2 == 0 { "even" } else { "odd" };
        write_png(&root.join(format!("train/{class}/{i:03}.png")), 5, 3, 1, i);
    }
    let opts = FolderOptions {
        val_split: Some(0.1),
        ..options(1)
    };
    let (mut train, _, _) = open_image_folder(&root, &opts).unwrap();
    let files: Vec<PathBuf> = train.files().to_vec();
    let (stats1, _) = train.clone().verify(1).unwrap();
    let (stats3, skipped) = train.verify(3).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(stats1, stats3);
    // Direct: every byte of every kept file, from its seed (the file name).
    let values: Vec<f64> = files
        .iter()
        .flat_map(|p| {
            let seed: u32 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            pixels(5, 3, 1, seed)
        })
        .map(|b| f64::from(f32::from(b) / 255.0))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    assert!(
        (f64::from(stats3.mean[0]) - mean).abs() < 1e-6,
        "{stats3:?} vs {mean}"
    );
    assert!(
        (f64::from(stats3.std[0]) - var.sqrt()).abs() < 1e-6,
        "{stats3:?}"
    );
}

#[test]
fn validation_split_is_a_seeded_partition() {
    let root = scratch("split");
    for i in 0..40u32 {
        write_png(
            &root.join(format!("train/c{}/{i:02}.png", i % 4)),
            2,
            2,
            1,
            i,
        );
    }
    let split = |seed| {
        let opts = FolderOptions {
            val_split: Some(0.25),
            seed,
            ..options(1)
        };
        let (train, val, _) = open_image_folder(&root, &opts).unwrap();
        (train.files().to_vec(), val.files().to_vec())
    };
    let (train, val) = split(7);
    assert_eq!((train.len(), val.len()), (30, 10));
    let mut all: Vec<PathBuf> = train.iter().chain(&val).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40);
    assert_eq!(split(7), (train.clone(), val.clone()));
    assert_ne!(split(8).1, val, "another seed holds out other images");
}

#[test]
fn layout_errors_say_what_is_wrong() {
    let root = scratch("layout");
    let err =
        |root: &Path, opts: &FolderOptions| open_image_folder(root, opts).unwrap_err().to_string();
    assert!(err(&root, &options(1)).contains("no train/ folder"));
    std::fs::create_dir_all(root.join("train/empty")).unwrap();
    write_png(&root.join("train/full/a.png"), 2, 2, 1, 0);
    assert!(err(&root, &options(1)).contains("an empty class"));
    std::fs::remove_dir(root.join("train/empty")).unwrap();
    assert!(err(&root, &options(1)).contains("no val/ or test/ folder"));
    write_png(&root.join("test/other/b.png"), 2, 2, 1, 0);
    assert!(err(&root, &options(1)).contains("\"other\" is not among train/'s classes"));
    assert!(err(&root, &options(2)).contains("2 channels"));
}

/// Batches of `loader` for `epoch`, each as (inputs, labels).
fn batches(loader: &DataLoader<ImageFolder>, epoch: u64) -> Vec<(Vec<f32>, Vec<usize>)> {
    loader.epoch(epoch).map(|b| (b.inputs, b.labels)).collect()
}

#[test]
fn worker_threads_give_the_inline_batches_with_random_resized_crops() {
    let root = scratch("workers");
    for i in 0..24u32 {
        let channels = if i % 3 == 0 { 1 } else { 3 };
        write_png(
            &root.join(format!("train/k{}/{i:02}.png", i % 3)),
            9 + i % 4,
            7,
            channels,
            i,
        );
    }
    let opts = FolderOptions {
        size: Some(5),
        val_split: Some(0.25),
        ..options(3)
    };
    let (train, _, _) = open_image_folder(&root, &opts).unwrap();
    let train = train.random_resized_crop(RandomResizedCrop::default());
    let loader = |seed, prefetch| {
        DataLoader::new(train.clone(), 4)
            .unwrap()
            .shuffle()
            .seed(seed)
            .horizontal_flip()
            .color_jitter(ColorJitter::new(0.3, 0.3).unwrap())
            .prefetch(prefetch)
    };
    let inline = batches(&loader(5, Prefetch::Inline), 1);
    assert_eq!(inline.len(), 5);
    assert_eq!(inline[0].0.len(), 4 * 3 * 5 * 5);
    for workers in [1, 2, 3] {
        assert_eq!(batches(&loader(5, Prefetch::Workers(workers)), 1), inline);
    }
    assert_ne!(
        batches(&loader(6, Prefetch::Inline), 1),
        inline,
        "another seed"
    );
    assert_ne!(
        batches(&loader(5, Prefetch::Inline), 2),
        inline,
        "another epoch"
    );
    // Without the random crop, an evaluation loader sees the centre box every epoch.
    let (plain, _, _) = open_image_folder(&root, &opts).unwrap();
    let eval = DataLoader::new(plain, 4).unwrap();
    assert_eq!(batches(&eval, 0), batches(&eval, 3));
}

/// A dataset of `len` one-value samples that counts how many it has written.
struct Counting {
    len: usize,
    written: Arc<AtomicUsize>,
}

impl Dataset for Counting {
    fn len(&self) -> usize {
        self.len
    }
    fn sample_shape(&self) -> [usize; 3] {
        [1, 1, 1]
    }
    fn num_classes(&self) -> usize {
        1
    }
    fn get(&self, index: usize) -> Sample<'_> {
        self.written.fetch_add(1, Ordering::SeqCst);
        Sample {
            data: vec![index as f32].into(),
            shape: [1, 1, 1],
            label: 0,
        }
    }
}

#[test]
fn worker_queues_are_bounded_whatever_the_dataset_size() {
    let written = Arc::new(AtomicUsize::new(0));
    let dataset = Counting {
        len: 10_000,
        written: Arc::clone(&written),
    };
    let loader = DataLoader::new(dataset, 1)
        .unwrap()
        .prefetch(Prefetch::Workers(2));
    let mut epoch = loader.epoch(0);
    let first = epoch.next().unwrap();
    assert_eq!(first.inputs, [0.0]);
    // Give the workers time to run ahead as far as they can; they must stop at two queued
    // batches and one blocked in sending, per thread: 1 taken + 2 · 3 at most.
    let mut seen = 0;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        seen = written.load(Ordering::SeqCst);
    }
    assert!((2..=7).contains(&seen), "{seen} samples written");
    // And the order is the dataset's, whichever thread made each batch.
    let next: Vec<f32> = epoch.take(20).map(|b| b.inputs[0]).collect();
    assert_eq!(next, (1..=20).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn random_resized_crop_boxes_follow_torchvision_bounds() {
    let rrc = RandomResizedCrop::default();
    let mut rng = ventral_nn::rng::SplitMix64::new(3);
    for _ in 0..200 {
        let b = rrc.sample(40, 60, &mut rng);
        assert!(b.top + b.height <= 40 && b.left + b.width <= 60, "{b:?}");
        let area = (b.height * b.width) as f64 / 2400.0;
        let ratio = b.width as f64 / b.height as f64;
        // Sides are rounded, so the bounds hold up to a pixel.
        assert!((0.06..=1.0).contains(&area), "{b:?}");
        assert!((0.7..=1.4).contains(&ratio), "{b:?}");
    }
    // A 1x100 strip never fits a drawn box: the fallback is the centre box of ratio 4/3
    // (height 1, width round(4/3) = 1), placed in the middle.
    let b = rrc.sample(1, 100, &mut rng);
    assert_eq!((b.top, b.left, b.height, b.width), (0, 49, 1, 1));
}

#[test]
fn color_jitter_stays_in_range_and_zero_strength_is_the_identity() {
    let sample: Vec<f32> = (0..48).map(|i| i as f32 / 47.0).collect();
    let mut rng = ventral_nn::rng::SplitMix64::new(9);
    let mut same = sample.clone();
    ColorJitter::new(0.0, 0.0)
        .unwrap()
        .apply(&mut same, [3, 4, 4], &mut rng);
    assert_eq!(same, sample);
    let mut changed = sample.clone();
    ColorJitter::new(0.5, 0.5)
        .unwrap()
        .apply(&mut changed, [3, 4, 4], &mut rng);
    assert_ne!(changed, sample);
    assert!(changed.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(ColorJitter::new(f32::NAN, 0.0).is_err());
}

#[test]
fn in_memory_augmentation_repeats_with_the_seed() {
    use ventral_nn::data::InMemoryDataset;
    let data: Vec<f32> = (0..8 * 3 * 6 * 6).map(|i| (i % 97) as f32 / 96.0).collect();
    let set = InMemoryDataset::new([3, 6, 6], data, vec![0; 8], 1, None).unwrap();
    let loader = |seed| {
        DataLoader::new(set.clone(), 4)
            .unwrap()
            .seed(seed)
            .random_resized_crop(RandomResizedCrop::default())
            .random_crop(1)
            .horizontal_flip()
            .color_jitter(ColorJitter::new(0.2, 0.2).unwrap())
    };
    let run = |seed| -> Vec<Vec<f32>> { loader(seed).epoch(0).map(|b| b.inputs).collect() };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
    let plain: Vec<Vec<f32>> = DataLoader::new(set.clone(), 4)
        .unwrap()
        .epoch(0)
        .map(|b| b.inputs)
        .collect();
    assert_ne!(run(1), plain, "the transforms change the images");
}
