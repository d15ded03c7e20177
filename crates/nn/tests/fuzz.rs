//! Mutation fuzzing of every file parser (see `fuzz_common` for the harness): safetensors
//! checkpoints, PyTorch `.pth` checkpoints (whole archives, and their pickle mutated inside a
//! valid archive), the training state's load and validation, IDX, CIFAR-10 binary, CSV,
//! PNG / PGM / PPM images, and the PNG / JPEG decoding of image folders. Each test runs a few
//! thousand inputs (a few seconds in release);
//! the long run sets `VENTRAL_FUZZ_ITERS`:
//!
//! ```text
//! VENTRAL_FUZZ_ITERS=1000000 cargo test --release -p ventral-nn --test fuzz -- --test-threads 1 --nocapture
//! ```

mod fuzz_common;
mod pth_common;

use std::alloc::System;
use std::path::Path;

use fuzz_common::{FUZZ_LIMITS, Target, check, gzip};
use ventral_kernels::alloc_count::CountingAllocator;
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};
use ventral_nn::data::{
    DataLoader, Dataset, load_idx, read_cifar10_batch, read_csv, read_digits_csv, read_idx_images,
    read_idx_labels, read_image, read_image_size, read_pixels,
};
use ventral_nn::layers::{Linear, Sequential};
use ventral_nn::optim::{Optimizer, Sgd, SgdConfig};
use ventral_nn::{Init, Module, Tensor, load_training_state, training_state};

#[global_allocator]
static ALLOC: CountingAllocator<System> = CountingAllocator::new(System);

const MIB: usize = 1 << 20;

/// A dataset reader holds the (decompressed) file about once, CSV about 6 bytes per byte of
/// text: 8x what the file can decompress to, under the fuzz limit, plus buffers.
fn data_bound(input: &[u8]) -> usize {
    let most = if input.starts_with(&[0x1f, 0x8b]) {
        (input.len() * 1032).min(FUZZ_LIMITS.decompressed_bytes as usize)
    } else {
        input.len()
    };
    8 * most + MIB
}

/// A safetensors file: its tensors (at most the file) and the parsed header.
fn checkpoint_bound(input: &[u8]) -> usize {
    32 * input.len() + MIB
}

/// A PyTorch archive: the parsed pickle (up to ~100 bytes per byte, the pickle at most
/// 1/128 of the limit), then up to the limit in tensors plus one storage of up to the limit.
fn pth_bound(input: &[u8]) -> usize {
    let pickle = input.len().min(FUZZ_LIMITS.checkpoint_bytes as usize / 128);
    2 * FUZZ_LIMITS.checkpoint_bytes as usize + 128 * pickle + 2 * input.len() + MIB
}

/// An image: the file, 4 bytes per pixel decoded and 12 as `f32`, up to the pixel limit.
fn image_bound(input: &[u8]) -> usize {
    16 * FUZZ_LIMITS.image_pixels as usize + 4 * input.len() + MIB
}

fn text<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// Succeeds if any of the results did; else joins the messages.
fn any_ok(results: &[Result<(), String>]) -> Result<(), String> {
    if results.iter().any(Result::is_ok) {
        return Ok(());
    }
    Err(results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect::<Vec<_>>()
        .join(" | "))
}

fn state(entries: &[(&str, Vec<usize>, TensorData)]) -> StateDict {
    let mut s = StateDict::new();
    for (name, shape, data) in entries {
        s.insert(
            *name,
            TensorRecord::new(name, shape.clone(), data.clone()).unwrap(),
        );
    }
    s
}

fn safetensors_bytes(s: &StateDict) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("ventral-fuzz-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.safetensors");
    checkpoint::save(&path, s).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

#[test]
fn fuzz_safetensors() {
    let small = state(&[
        ("w", vec![2, 3], TensorData::F32(vec![0.5; 6])),
        ("b", vec![3], TensorData::F32(vec![-1.0, 0.0, 2.0])),
        ("n", vec![], TensorData::I64(vec![7])),
    ]);
    let empty = state(&[("e", vec![0, 4], TensorData::F32(vec![]))]);
    check(
        &Target {
            name: "safetensors",
            seeds: vec![
                ("a.safetensors", safetensors_bytes(&small)),
                ("b.safetensors", safetensors_bytes(&empty)),
            ],
            parse: |p| text(checkpoint::load(p)).map(drop),
            bound: checkpoint_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

#[test]
fn fuzz_pth() {
    let read = |name: &str| std::fs::read(pth_common::fixture(name)).unwrap();
    check(
        &Target {
            name: "pth",
            seeds: vec![
                ("views.pth", read("views.pth")),
                ("protocol4.pth", read("views_p4.pth")),
                ("deflated.pth", read("views_deflated.pth")),
                ("checkpoint.pth", read("checkpoint.pth")),
                ("small.pth", fuzz_pickle_archive(&small_state_pickle())),
                ("zip64.pth", zip64_seed()),
            ],
            parse: |p| text(checkpoint::load(p)).map(drop),
            bound: pth_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

/// A one-tensor archive in the ZIP64 layout.
fn zip64_seed() -> Vec<u8> {
    let pickle = pth_common::state_pickle(&[pth_common::Tensor::float("w", "0", vec![4])]);
    let storage = pth_common::f32_bytes(&[0.5, -1.0, 2.0, 8.0]);
    pth_common::zip_with(&[("a/data.pkl", &pickle), ("a/data/0", &storage)], true)
}

/// A state dict of the layouts the pickle can describe, over [`fuzz_pickle_archive`]'s
/// storages: contiguous, offset, strided, int64, float16.
fn small_state_pickle() -> Vec<u8> {
    use pth_common::Tensor as T;
    pth_common::state_pickle(&[
        T::float("w", "0", vec![4, 4]),
        T {
            offset: 3,
            size: vec![2, 3],
            stride: vec![1, 4],
            numel: 16,
            ..T::float("t", "0", vec![])
        },
        T {
            storage: "LongStorage",
            ..T::float("n", "1", vec![2, 2])
        },
        T {
            storage: "HalfStorage",
            ..T::float("h", "2", vec![8])
        },
    ])
}

/// `pickle` as the `data.pkl` of an archive with three storages: 16 float32, 4 int64 and
/// 8 float16 values.
fn fuzz_pickle_archive(pickle: &[u8]) -> Vec<u8> {
    let floats: Vec<f32> = (0..16).map(|i| i as f32 * 0.25 - 1.0).collect();
    let longs: Vec<u8> = (0..4i64).flat_map(|i| (i * 1000).to_le_bytes()).collect();
    let halves: Vec<u8> = (0..8u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    pth_common::archive(
        pickle,
        &[
            ("0", pth_common::f32_bytes(&floats)),
            ("1", longs),
            ("2", halves),
        ],
    )
}

#[test]
fn fuzz_pth_pickle() {
    // {"epoch": 3, "lr": 0.1, "model": {...}, "hist": [1, 2]}: a checkpoint dict.
    let mut nested = b"\x80\x02}(X\x05\x00\x00\x00epochK\x03X\x02\x00\x00\x00lrG?\xb9\x99\x99\x99\x99\x99\x9aX\x04\x00\x00\x00hist](K\x01K\x02eX\x05\x00\x00\x00model}(".to_vec();
    pth_common::tensor_items(&mut nested, &pth_common::Tensor::float("w", "0", vec![16]));
    nested.extend_from_slice(b"uu.");
    check(
        &Target {
            name: "pth_pickle",
            seeds: vec![
                ("state.pkl", small_state_pickle()),
                ("checkpoint.pkl", nested),
            ],
            parse: |p| {
                // The mutated pickle inside a valid archive, so that mutations reach the
                // pickle reader instead of failing the archive's CRC.
                let archive = fuzz_pickle_archive(&std::fs::read(p).unwrap());
                let path = p.with_extension("pth");
                std::fs::write(&path, archive).unwrap();
                text(checkpoint::load(&path)).map(drop)
            },
            bound: pth_bound,
            errors_name_file: false,
        },
        &ALLOC,
    );
}

/// The model and optimizer a training state is restored into: Linear(2→3), SGD with
/// momentum.
fn model_and_optimizer() -> (Sequential, Sgd) {
    let model = Sequential::new().push(Linear::new(2, 3, true, &mut Init::new(0)).unwrap());
    let opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    (model, opt)
}

/// Loads a training state file as `ventral train --resume` does today: the safetensors
/// file, split into `model.` and `optimizer.` entries, each restored strictly.
fn load_train_state(path: &Path) -> Result<(), String> {
    let all = text(checkpoint::load(path))?;
    let (mut model, mut opt) = model_and_optimizer();
    let (mut m, mut o) = (StateDict::new(), StateDict::new());
    for (name, record) in all.iter() {
        if let Some(k) = name.strip_prefix("model.") {
            m.insert(k, record.clone());
        } else if let Some(k) = name.strip_prefix("optimizer.") {
            o.insert(k, record.clone());
        }
    }
    text(load_training_state(&mut model, &m))?;
    text(opt.load_state_dict(&mut model, &o))
}

#[test]
fn fuzz_train_state() {
    let (mut model, mut opt) = model_and_optimizer();
    let x = Tensor::from_vec(vec![1.0, -1.0, 0.5, 2.0], [2, 2]).unwrap();
    let loss = model.forward(&x).unwrap().sum(&[0, 1], false).unwrap();
    let grads = loss.backward().unwrap();
    opt.step(&mut model, &grads).unwrap();
    let mut all = StateDict::new();
    for (prefix, part) in [
        ("model.", training_state(&mut model)),
        ("optimizer.", opt.state_dict()),
    ] {
        for (name, record) in part.iter() {
            all.insert(format!("{prefix}{name}"), record.clone());
        }
    }
    for name in ["epoch", "step", "next_batch"] {
        all.insert(
            name,
            TensorRecord::new(name, vec![], TensorData::I64(vec![1])).unwrap(),
        );
    }
    check(
        &Target {
            name: "train_state",
            seeds: vec![("state.safetensors", safetensors_bytes(&all))],
            parse: load_train_state,
            bound: checkpoint_bound,
            errors_name_file: false,
        },
        &ALLOC,
    );
}

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

#[test]
fn fuzz_idx() {
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 37 % 256) as u8).collect();
    let images = idx(0x803, &[3, 4, 5], &pixels);
    let labels = idx(0x801, &[3], &[1, 9, 0]);
    let dir = fuzz_common::failure_dir("idx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("labels-3"), &labels).unwrap();
    check(
        &Target {
            name: "idx",
            seeds: vec![
                ("images", images.clone()),
                ("labels", labels.clone()),
                ("images.gz", gzip(&images)),
                ("labels.gz", gzip(&labels)),
            ],
            parse: |p| {
                let labels = fuzz_common::failure_dir("idx").join("labels-3");
                // The pair's errors may name either file; only the single readers must.
                let _ = load_idx(p, &labels, 10, None);
                any_ok(&[
                    text(read_idx_images(p)).map(drop),
                    text(read_idx_labels(p, 10)).map(drop),
                ])
            },
            bound: data_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

#[test]
fn fuzz_cifar() {
    let mut batch = Vec::new();
    for label in [3u8, 9] {
        batch.push(label);
        batch.extend((0..3072).map(|i| ((i * 7 + usize::from(label)) % 256) as u8));
    }
    check(
        &Target {
            name: "cifar",
            seeds: vec![("batch.bin", batch.clone()), ("batch.bin.gz", gzip(&batch))],
            parse: |p| text(read_cifar10_batch(p)).map(drop),
            bound: data_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

/// Reads a CSV as `ventral train --dataset csv:…` does: the dataset, then its normalisation
/// (whose error for a constant column names the file); or as the digits format.
fn load_csv(p: &Path) -> Result<(), String> {
    let generic = text(read_csv(p)).and_then(|ds| {
        let (mean, std) = ds.channel_mean_std();
        let loader = text(DataLoader::new(ds, 2))?;
        text(loader.normalize(mean, std)).map(drop)
    });
    any_ok(&[
        generic,
        text(read_digits_csv(p)).map(|d| assert!(!d.is_empty())),
    ])
}

#[test]
fn fuzz_csv() {
    let digits: String = (0..2)
        .map(|r| {
            let mut row: Vec<String> = (0..64).map(|i| ((i + r) % 17).to_string()).collect();
            row.push((r * 7).to_string());
            row.join(",") + "\n"
        })
        .collect();
    let iris = "sepal,petal,species\n5.1,1.4,setosa\n7.0,4.7,versicolor\n5.0,1.5,setosa\n6.3,6.0,virginica\n";
    let numbers = "1.5,-2,0\r\n3,40,1\n\n0.25,1e3,2\n";
    check(
        &Target {
            name: "csv",
            seeds: vec![
                ("iris.csv", iris.as_bytes().to_vec()),
                ("numbers.csv", numbers.as_bytes().to_vec()),
                ("digits.csv", digits.as_bytes().to_vec()),
                ("iris.csv.gz", gzip(iris.as_bytes())),
            ],
            parse: load_csv,
            bound: data_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

fn png_bytes(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == png::ColorType::Indexed {
            encoder.set_palette(vec![0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0]);
        }
        let mut writer = encoder.write_header().unwrap();
        let samples = match color {
            png::ColorType::Grayscale | png::ColorType::Indexed => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
        };
        let bits = samples * depth as usize;
        let row = (width as usize * bits).div_ceil(8);
        let data: Vec<u8> = (0..row * height as usize)
            .map(|i| {
                (i * 29 % 256) as u8
                    & if color == png::ColorType::Indexed {
                        0x11
                    } else {
                        0xff
                    }
            })
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

#[test]
fn fuzz_images() {
    use png::{BitDepth, ColorType};
    let mut pgm = b"P5\n# seed\n4 3\n255\n".to_vec();
    pgm.extend((0..12u8).map(|i| i * 20));
    let mut ppm = b"P6 2 2 1000\n".to_vec();
    ppm.extend((0..24u8).map(|i| i * 9));
    check(
        &Target {
            name: "images",
            seeds: vec![
                (
                    "grey.png",
                    png_bytes(4, 3, ColorType::Grayscale, BitDepth::Eight),
                ),
                (
                    "rgba.png",
                    png_bytes(3, 2, ColorType::Rgba, BitDepth::Eight),
                ),
                (
                    "deep.png",
                    png_bytes(2, 2, ColorType::Rgb, BitDepth::Sixteen),
                ),
                (
                    "palette.png",
                    png_bytes(5, 2, ColorType::Indexed, BitDepth::Two),
                ),
                ("grey.pgm", pgm),
                ("wide.ppm", ppm),
            ],
            parse: |p| text(read_image(p)).map(drop),
            bound: image_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

/// A PNG or JPEG of `width × height` with `channels` 1 or 3, encoded by the `image` crate.
fn encoded(jpeg: bool, width: u32, height: u32, channels: usize) -> Vec<u8> {
    use image::ImageEncoder;
    let color = if channels == 1 {
        image::ColorType::L8
    } else {
        image::ColorType::Rgb8
    };
    let pixels: Vec<u8> = (0..width * height * channels as u32)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    let mut out = Vec::new();
    if jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(&pixels, width, height, color)
            .expect("encodes");
    } else {
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&pixels, width, height, color)
            .expect("encodes");
    }
    out
}

/// What an image folder does with each file: the header scan, then the decode to bytes.
#[test]
fn fuzz_folder_images() {
    check(
        &Target {
            name: "folder images",
            seeds: vec![
                ("grey.jpg", encoded(true, 9, 7, 1)),
                ("rgb.jpg", encoded(true, 17, 16, 3)),
                ("grey.png", encoded(false, 5, 4, 1)),
                (
                    "rgba.png",
                    png_bytes(3, 2, png::ColorType::Rgba, png::BitDepth::Eight),
                ),
            ],
            parse: |p| {
                text(read_image_size(p))?;
                text(read_pixels(p)).map(drop)
            },
            bound: image_bound,
            errors_name_file: true,
        },
        &ALLOC,
    );
}

/// The harness can fail: a parser that panics, one that allocates past its bound, and one
/// whose error does not name the file are each counted.
#[test]
fn the_harness_catches_panics_blowups_and_unnamed_errors() {
    let seeds = vec![("x.bin", vec![1u8, 2, 3])];
    let report = |parse: fn(&Path) -> Result<(), String>| {
        fuzz_common::run(
            &Target {
                name: "self-test",
                seeds: seeds.clone(),
                parse,
                bound: |input| 1000 + input.len(),
                errors_name_file: true,
            },
            &ALLOC,
            50,
            1,
        )
    };
    let panics = report(|p| {
        let bytes = std::fs::read(p).unwrap();
        assert!(bytes.len() == 3, "a mutant");
        Ok(())
    });
    assert!(panics.panics > 0 && panics.panics < 50, "{panics:?}");
    let blowup = report(|p| {
        let n = std::fs::read(p).unwrap().len();
        std::hint::black_box(vec![0u8; 100_000 * (n != 3) as usize]);
        Ok(())
    });
    assert!(blowup.over_bound > 0, "{blowup:?}");
    let unnamed = report(|p| {
        if std::fs::read(p).unwrap().len() == 3 {
            Ok(())
        } else {
            Err("something is wrong".to_string())
        }
    });
    assert!(unnamed.unnamed > 0, "{unnamed:?}");
}
