//! `ventral train --dataset folder:DIR`, augmentation flags, `ventral data stats`,
//! `ventral data export-folder` and the default data directory, through the binary.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_one_line_error, run, run_ok, scratch, ventral};
use image::ImageEncoder;
use ventral_nn::data::{self, Dataset, FolderOptions, Split, open_image_folder};

/// A 28x28 grey or RGB image whose pixel (x, y), channel k is `(seed + x + 2y + 3k) mod 256`.
fn pixels(channels: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for y in 0..28u32 {
        for x in 0..28u32 {
            for k in 0..channels as u32 {
                out.push(((seed + x + 2 * y + 3 * k) % 256) as u8);
            }
        }
    }
    out
}

fn write(path: &Path, channels: usize, seed: u32, jpeg: bool) {
    let color = if channels == 1 {
        image::ColorType::L8
    } else {
        image::ColorType::Rgb8
    };
    let mut bytes = Vec::new();
    let px = pixels(channels, seed);
    if jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .write_image(&px, 28, 28, color)
            .unwrap();
    } else {
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(&px, 28, 28, color)
            .unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// train/{one,two,zero}: 8 images each, grey and RGB, PNG and JPEG, plus one file that is
/// not an image; val/ with 2 per class.
fn tiny_folder(name: &str) -> PathBuf {
    let root = scratch(name);
    for (c, class) in ["zero", "one", "two"].iter().enumerate() {
        for i in 0..10u32 {
            let split = if i < 8 { "train" } else { "val" };
            let seed = 40 * c as u32 + i;
            let jpeg = i % 3 == 0;
            let ext = if jpeg { "jpg" } else { "png" };
            let channels = if i % 2 == 0 { 1 } else { 3 };
            write(
                &root.join(format!("{split}/{class}/{i:02}.{ext}")),
                channels,
                seed,
                jpeg,
            );
        }
    }
    std::fs::write(root.join("train/one/bad.png"), b"not an image").unwrap();
    root
}

fn folder_arg(root: &Path) -> String {
    format!("folder:{}", root.display())
}

#[test]
fn trains_from_a_folder_and_keeps_class_names() {
    let root = tiny_folder("train");
    let out = scratch("train-out");
    let result = run_ok(&[
        "train",
        "--dataset",
        &folder_arg(&root),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--quiet",
        "--augment",
        "none",
        "--hflip",
        "--random-crop",
        "2",
        "--color-jitter",
        "0.1,0.1",
        "--out",
        out.to_str().unwrap(),
        "--overwrite",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("skipped 1 unreadable image") && stderr.contains("bad.png"),
        "{stderr}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["class_names"],
        serde_json::json!(["one", "two", "zero"])
    );
    assert_eq!(config["train_samples"], 24);
    assert_eq!(config["test_samples"], 6);
    assert_eq!(config["input_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(config["args"]["hflip"], true);
    assert_eq!(config["args"]["random_crop"], 2);

    // eval on the folder gives the accuracy and loss training measured for last.safetensors.
    let evaluated = run_ok(&[
        "eval",
        "--json",
        "--weights",
        out.join("last.safetensors").to_str().unwrap(),
        "--dataset",
        &folder_arg(&root),
    ]);
    let eval: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let epoch: serde_json::Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["kind"] == "epoch")
        .unwrap();
    assert_eq!(eval["accuracy"], epoch["test_accuracy"]);
    let (a, b) = (
        eval["loss"].as_f64().unwrap(),
        epoch["test_loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");

    // predict prints the class names of the run.
    let image = root.join("val/two/08.png");
    let predicted = run_ok(&[
        "predict",
        "--weights",
        out.join("best.safetensors").to_str().unwrap(),
        image.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&predicted.stdout);
    assert!(
        ["one", "two", "zero"]
            .iter()
            .any(|c| text.contains(&format!(": {c} ("))),
        "{text}"
    );

    // predict feeds the centre of an image, as the folder's evaluation did, and does not
    // invert it: the image framed by light columns gives the very same probabilities.
    let wide = root.join("wide.png");
    let inner = pixels(1, 2 * 40 + 8);
    let framed: Vec<u8> = (0..28)
        .flat_map(|y| (0..40).map(move |x| (y, x)))
        .map(|(y, x)| {
            if (6..34).contains(&x) {
                inner[y * 28 + x - 6]
            } else {
                250
            }
        })
        .collect();
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&framed, 40, 28, image::ColorType::L8)
        .unwrap();
    std::fs::write(&wide, bytes).unwrap();
    let probabilities = |image: &Path| {
        let out = run_ok(&[
            "predict",
            "--json",
            "--weights",
            out.join("best.safetensors").to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["probabilities"].clone()
    };
    assert_eq!(probabilities(&wide), probabilities(&image));

    // Resuming with another augmentation is refused; the run is untouched.
    let before = std::fs::read(out.join("config.json")).unwrap();
    let conflict = run(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--random-crop",
        "3",
    ]);
    assert_one_line_error(&conflict, &["--random-crop 3", "--random-crop 2"]);
    assert_eq!(std::fs::read(out.join("config.json")).unwrap(), before);
}

#[test]
fn strict_data_and_bad_folders_are_one_line_errors() {
    let root = tiny_folder("strict");
    let out = scratch("strict-out");
    let train = |dataset: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            dataset,
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--overwrite",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = train(&folder_arg(&root), &["--strict-data"]);
    assert_one_line_error(&r, &["bad.png", "not a PNG or JPEG"]);
    let r = train("folder:/no/such/folder", &[]);
    assert_one_line_error(&r, &["/no/such/folder", "is not a folder"]);
    std::fs::create_dir_all(root.join("train/empty")).unwrap();
    let r = train(&folder_arg(&root), &[]);
    assert_one_line_error(&r, &["empty", "an empty class"]);
    std::fs::remove_dir(root.join("train/empty")).unwrap();
    std::fs::remove_dir_all(root.join("val")).unwrap();
    let r = train(&folder_arg(&root), &[]);
    assert_one_line_error(&r, &["no val/ or test/ folder", "--val-split"]);
    let r = train(&folder_arg(&root), &["--val-split", "1.5"]);
    assert_one_line_error(&r, &["--val-split", "between 0 and 1"]);
    let r = train(&folder_arg(&root), &["--normalize", "0.5,0.5:0.2"]);
    assert_one_line_error(&r, &["--normalize", "2 means and 1 standard deviations"]);
    let r = train(
        &folder_arg(&root),
        &["--augment", "cifar", "--val-split", "0.25"],
    );
    assert_one_line_error(&r, &["3 channel statistics", "1 channels"]);
    let r = train("mnist", &["--image-size", "32"]);
    assert_one_line_error(&r, &["--image-size applies to image folders", "mnist"]);
}

#[test]
fn data_stats_match_a_direct_computation() {
    let root = tiny_folder("stats");
    let out = run_ok(&["data", "stats", &folder_arg(&root), "--channels", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("24 training samples of 3x28x28"), "{text}");
    let flag = text
        .lines()
        .find_map(|l| l.strip_prefix("--normalize "))
        .unwrap();
    let (mean, std) = flag.split_once(':').unwrap();
    let parse = |s: &str| -> Vec<f64> { s.split(',').map(|v| v.parse().unwrap()).collect() };
    let (mean, std) = (parse(mean), parse(std));
    // Directly: decode every readable training image with the image crate, grey copied to
    // RGB, and take each channel's mean and population std over all pixels.
    let mut sums = [(0f64, 0f64); 3];
    let mut count = 0f64;
    for class in ["one", "two", "zero"] {
        for entry in std::fs::read_dir(root.join("train").join(class)).unwrap() {
            let Ok(img) = image::open(entry.unwrap().path()) else {
                continue;
            };
            let rgb = img.into_rgb8();
            for px in rgb.pixels() {
                for (sum, &byte) in sums.iter_mut().zip(&px.0) {
                    let v = f64::from(f32::from(byte) / 255.0);
                    sum.0 += v;
                    sum.1 += v * v;
                }
                count += 1.0;
            }
        }
    }
    for k in 0..3 {
        let m = sums[k].0 / count;
        let s = (sums[k].1 / count - m * m).sqrt();
        assert!(
            (mean[k] - m).abs() < 2e-6,
            "channel {k}: {} vs {m}",
            mean[k]
        );
        assert!((std[k] - s).abs() < 2e-6, "channel {k}: {} vs {s}", std[k]);
    }
}

#[test]
fn export_folder_writes_mnist_as_png_and_jpeg() {
    let out = scratch("export");
    let png = out.join("png");
    let jpg = out.join("jpg");
    run_ok(&[
        "data",
        "export-folder",
        "--limit",
        "30",
        png.to_str().unwrap(),
    ]);
    run_ok(&[
        "data",
        "export-folder",
        "--limit",
        "30",
        "--format",
        "jpeg",
        "--quality",
        "95",
        jpg.to_str().unwrap(),
    ]);
    let mnist = data::load("mnist", &common::data_dir("mnist"), Split::Test).unwrap();
    let opts = FolderOptions {
        channels: 1,
        size: None,
        strict: true,
        val_split: None,
        seed: 0,
    };
    for (dir, exact) in [(&png, true), (&jpg, false)] {
        let (_, test, _) = open_image_folder(dir, &opts).unwrap();
        assert_eq!(test.len(), 30);
        for i in 0..test.len() {
            let file = &test.files()[i];
            let index: usize = file.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            let (got, want) = (test.get(i), mnist.get(index));
            assert_eq!(test.class_names()[got.label], want.label.to_string());
            let err = got
                .data
                .iter()
                .zip(want.data.iter())
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / 784.0;
            if exact {
                assert_eq!(got.data, want.data, "{}", file.display());
            } else {
                assert!(err < 0.02, "{}: mean error {err}", file.display());
            }
        }
    }
    let again = run(&[
        "data",
        "export-folder",
        "--limit",
        "1",
        png.to_str().unwrap(),
    ]);
    assert_one_line_error(&again, &["already exists and is not empty"]);
}

#[test]
fn default_data_directory_follows_ventral_data() {
    let cwd = scratch("cwd");
    // VENTRAL_DATA names the folder holding mnist/.
    let data_root = common::data_dir("mnist").parent().unwrap().to_path_buf();
    let ok = ventral()
        .current_dir(&cwd)
        .env("VENTRAL_DATA", &data_root)
        .args(["data", "stats", "mnist"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("60000 training samples"));
    let missing = ventral()
        .current_dir(&cwd)
        .env("VENTRAL_DATA", cwd.join("nowhere"))
        .args(["train", "--out", cwd.join("run").to_str().unwrap()])
        .output()
        .unwrap();
    assert_one_line_error(
        &missing,
        &["nowhere/mnist", "VENTRAL_DATA is set", "--data-dir"],
    );
    let eval = ventral()
        .current_dir(&cwd)
        .env("VENTRAL_DATA", cwd.join("nowhere"))
        .args(["eval", "--weights", "w.safetensors"])
        .output()
        .unwrap();
    assert_one_line_error(&eval, &["nowhere/mnist", "VENTRAL_DATA is set"]);
}

#[test]
fn a_config_json_without_the_data_flags_still_resumes() {
    let out = scratch("old-config");
    let dir = out.to_str().unwrap();
    run_ok(&[
        "train",
        "--epochs",
        "1",
        "--limit-train",
        "256",
        "--limit-test",
        "64",
        "--threads",
        "1",
        "--quiet",
        "--out",
        dir,
        "--overwrite",
    ]);
    // Remove every key this change added, as a config.json written before it.
    let path = out.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let args = config["args"].as_object_mut().unwrap();
    for key in [
        "image_size",
        "val_split",
        "strict_data",
        "data_workers",
        "augment",
        "random_crop",
        "hflip",
        "random_resized_crop",
        "color_jitter",
        "normalize",
    ] {
        assert!(args.remove(key).is_some(), "{key} is stored in config.json");
    }
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let resumed = run_ok(&["train", "--resume", dir, "--epochs", "2", "--quiet"]);
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("epoch   2/2"));
}
