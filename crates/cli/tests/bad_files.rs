//! Issue #18's hostile and broken files, run through the binary: each gives a non-zero exit
//! that is not a panic (101), one line on stderr naming the file and what is wrong, within
//! bounded memory and time, and leaves the files it was given as they were.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_one_line_error, run_ok, scratch, ventral};
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use ventral_nn::checkpoint::{self, TensorData, TensorRecord};

const MIB: usize = 1 << 20;

/// `ventral predict --model linear --weights WEIGHTS EXTRA… IMAGE` under `env`, checking that
/// the weights and the image (when it is a regular file) are left as they were.
fn predict_linear(weights: &Path, extra: &[&str], image: &Path, env: &[(&str, &str)]) -> Output {
    let (w, i) = (weights.to_str().unwrap(), image.to_str().unwrap());
    let mut args = vec!["predict", "--model", "linear", "--weights", w];
    args.extend_from_slice(extra);
    args.push(i);
    let mut inputs = vec![weights];
    if image.is_file() {
        inputs.push(image);
    }
    run_env(&args, env, &inputs)
}

/// Runs `ventral ARGS…` with extra environment variables, failing the test if it takes more
/// than 60 s (a FIFO read would block forever) and checking that every file in `inputs` is
/// unchanged afterwards.
fn run_env(args: &[&str], env: &[(&str, &str)], inputs: &[&Path]) -> Output {
    let before: Vec<Vec<u8>> = inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let mut cmd: Command = ventral();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the ventral binary runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("ventral {args:?} ran for more than 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    for (path, bytes) in inputs.iter().zip(before) {
        assert!(
            std::fs::read(path).unwrap() == bytes,
            "{} changed",
            path.display()
        );
    }
    out
}

/// A small CSV run: 20 rows of two features and two classes, trained one epoch with a
/// linear model. Returns (dataset argument, run folder).
fn csv_run(dir: &Path) -> (String, PathBuf) {
    let rows: String = (0..20)
        .map(|i| format!("{},{},{}\n", i as f32 / 10.0, (i % 7) as f32, i % 2))
        .collect();
    let path = dir.join("points.csv");
    std::fs::write(&path, format!("x,y,class\n{rows}")).unwrap();
    let dataset = format!("csv:{}", path.display());
    let out = dir.join("run");
    run_ok(&[
        "train",
        "--model",
        "linear",
        "--dataset",
        &dataset,
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    (dataset, out)
}

fn gzip_to(path: &Path, chunks: impl Iterator<Item = Vec<u8>>) {
    let mut gz = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    for chunk in chunks {
        gz.write_all(&chunk).unwrap();
    }
    gz.finish().unwrap();
}

/// A PNG whose header declares `width` x `height` grey pixels, with only its first rows of
/// (valid, zlib-compressed) image data.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    z.write_all(&vec![0u8; (width as usize + 1) * 64]).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn predict_refuses_an_image_of_23000x23000_pixels() {
    let dir = scratch("huge-png");
    let (_, run) = csv_run(&dir);
    let weights = run.join("best.safetensors");
    let png = dir.join("huge.png");
    std::fs::write(&png, png_declaring(23_000, 23_000)).unwrap();
    let out = predict_linear(&weights, &[], &png, &[]);
    assert_one_line_error(
        &out,
        &[
            png.to_str().unwrap(),
            "23000x23000 = 529000000 pixels, more than the limit of 16777216",
            "VENTRAL_MAX_IMAGE_PIXELS",
        ],
    );
    // The variable lowers (or raises) the limit.
    let pgm = dir.join("small.pgm");
    std::fs::write(&pgm, b"P5 4 4 255\n0123456789abcdef").unwrap();
    let out = predict_linear(&weights, &[], &pgm, &[("VENTRAL_MAX_IMAGE_PIXELS", "15")]);
    assert_one_line_error(&out, &["small.pgm", "4x4 = 16 pixels", "limit of 15"]);
    let out = predict_linear(&weights, &[], &pgm, &[("VENTRAL_MAX_IMAGE_PIXELS", "lots")]);
    assert_one_line_error(
        &out,
        &["VENTRAL_MAX_IMAGE_PIXELS=\"lots\" is not a positive whole number"],
    );
    // A device as the image or as the run's config is refused, not read without end.
    let out = predict_linear(&weights, &[], Path::new("/dev/zero"), &[]);
    assert_one_line_error(&out, &["/dev/zero", "not a regular file"]);
    let out = predict_linear(&weights, &["--config", "/dev/zero"], &pgm, &[]);
    assert_one_line_error(&out, &["/dev/zero", "not a regular file"]);
}

#[test]
fn train_refuses_a_csv_class_of_65535_and_a_gzip_bomb() {
    let dir = scratch("csv-hostile");
    let out_dir = dir.join("run");
    // Issue #18's 1.7 KB file: memory grew with the square of the class count.
    let mut text: String = (0..150).map(|i| format!("{i},{}\n", i % 3)).collect();
    text.push_str("0.5,65535\n");
    let huge = dir.join("huge-label.csv");
    std::fs::write(&huge, &text).unwrap();
    let dataset = format!("csv:{}", huge.display());
    let args = [
        "train",
        "--model",
        "linear",
        "--dataset",
        &dataset,
        "--epochs",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = run_env(&args, &[], &[&huge]);
    assert_one_line_error(
        &out,
        &[
            huge.to_str().unwrap(),
            "line 151: class 65535 is out of range",
            "VENTRAL_MAX_CLASSES",
        ],
    );
    // A gzip bomb: 64 MiB of rows from a few hundred KB, over an 8 MiB limit.
    let bomb = dir.join("bomb.csv.gz");
    gzip_to(&bomb, (0..64).map(|_| b"1,0\n".repeat(MIB / 4)));
    let dataset = format!("csv:{}", bomb.display());
    let args = [
        "train",
        "--model",
        "linear",
        "--dataset",
        &dataset,
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = run_env(
        &args,
        &[("VENTRAL_MAX_DECOMPRESSED_BYTES", "8388608")],
        &[&bomb],
    );
    assert_one_line_error(
        &out,
        &[
            bomb.to_str().unwrap(),
            "larger than the 8388608-byte limit",
            "VENTRAL_MAX_DECOMPRESSED_BYTES",
        ],
    );
}

#[test]
fn train_names_a_constant_csv_column() {
    let dir = scratch("csv-constant");
    let path = dir.join("flat.csv");
    let rows: String = (0..20).map(|i| format!("{i},3,{}\n", i % 2)).collect();
    std::fs::write(&path, format!("width,height,class\n{rows}")).unwrap();
    let dataset = format!("csv:{}", path.display());
    let out_dir = dir.join("run");
    let args = [
        "train",
        "--model",
        "linear",
        "--dataset",
        &dataset,
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = run_env(&args, &[], &[&path]);
    assert_one_line_error(
        &out,
        &[
            path.to_str().unwrap(),
            "column 2 (\"height\") has the same value 3 in every sample",
        ],
    );
}

fn idx(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

#[test]
fn train_refuses_an_idx_gzip_bomb_at_its_header() {
    let dir = scratch("idx-bomb");
    // 2,700,000 images of 28x28 (2.1 GB, past the 1 GiB default) claimed by the header; the
    // file holds 64 MB of them, compressed to a few hundred KB.
    let images = dir.join("train-images-idx3-ubyte.gz");
    let zeros = vec![0u8; 28 * 28 * 1000];
    gzip_to(
        &images,
        std::iter::once(idx(0x803, &[2_700_000, 28, 28])).chain((0..80).map(|_| zeros.clone())),
    );
    let labels = dir.join("train-labels-idx1-ubyte");
    let mut label_file = idx(0x801, &[10]);
    label_file.extend(0..10u8);
    std::fs::write(&labels, &label_file).unwrap();
    let out_dir = dir.join("run");
    let args = [
        "train",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = run_env(&args, &[], &[&images, &labels]);
    assert_one_line_error(
        &out,
        &[
            images.to_str().unwrap(),
            "2700000 images of 28x28 = 2116800000 bytes, more than the 1073741824-byte limit",
        ],
    );
    // Under the limit, the count is compared with the labels' before the pixels are read.
    let out = run_env(
        &args,
        &[("VENTRAL_MAX_DECOMPRESSED_BYTES", "4000000000")],
        &[&images, &labels],
    );
    assert_one_line_error(
        &out,
        &[
            images.to_str().unwrap(),
            "holds 2700000 images but",
            labels.to_str().unwrap(),
            "holds 10 labels",
        ],
    );
}

#[test]
fn eval_refuses_a_6_gb_sparse_checkpoint_and_a_fifo() {
    let dir = scratch("big-checkpoint");
    let path = dir.join("big.safetensors");
    let values: u64 = 1_500_000_000; // 6 GB of f32, all a hole in the file
    let header = format!(
        r#"{{"fc.weight":{{"dtype":"F32","shape":[{values}],"data_offsets":[0,{}]}}}}"#,
        4 * values
    );
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&(header.len() as u64).to_le_bytes())
        .unwrap();
    file.write_all(header.as_bytes()).unwrap();
    file.set_len(8 + header.len() as u64 + 4 * values).unwrap();
    drop(file);
    let args = ["eval", "--weights", path.to_str().unwrap()];
    let out = run_env(&args, &[], &[]);
    assert_one_line_error(
        &out,
        &[
            path.to_str().unwrap(),
            "6000000000 bytes of tensors, more than the 4294967296-byte limit",
            "VENTRAL_MAX_CHECKPOINT_BYTES",
        ],
    );
    let fifo = dir.join("pipe.safetensors");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let args = ["eval", "--weights", fifo.to_str().unwrap()];
        let out = run_env(&args, &[], &[]);
        assert_one_line_error(&out, &[fifo.to_str().unwrap(), "not a regular file"]);
        let images = dir.join("train-images-idx3-ubyte");
        std::os::unix::fs::symlink(&fifo, &images).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), b"").unwrap();
        let run = dir.join("run");
        let args = [
            "train",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ];
        let out = run_env(&args, &[], &[]);
        assert_one_line_error(&out, &[images.to_str().unwrap(), "not a regular file"]);
    } else {
        eprintln!("FIFO case skipped: no mkfifo");
    }
}

/// `weights` with every value of its first weight tensor set to `value`, saved as `name`.
fn weights_filled(weights: &Path, value: f32, dir: &Path, name: &str) -> (PathBuf, String, usize) {
    let mut state = checkpoint::load(weights).unwrap();
    let (key, shape) = state
        .iter()
        .find(|(k, _)| k.ends_with("weight"))
        .map(|(k, r)| (k.to_string(), r.shape().to_vec()))
        .unwrap();
    let n: usize = shape.iter().product();
    state.insert(
        key.clone(),
        TensorRecord::new(&key, shape, TensorData::F32(vec![value; n])).unwrap(),
    );
    let path = dir.join(name);
    checkpoint::save(&path, &state).unwrap();
    (path, key, n)
}

#[test]
fn eval_of_weights_that_are_or_give_nan_is_an_error() {
    let dir = scratch("nan-weights");
    common::train_ok(&dir, &[]);
    let weights = dir.join("best.safetensors");
    // Before the fix: "accuracy 9.80 %, loss NaN" and exit 0.
    let (nan, key, n) = weights_filled(&weights, f32::NAN, &dir, "nan.safetensors");
    let args = ["eval", "--weights", nan.to_str().unwrap()];
    let out = run_env(&args, &[], &[&nan]);
    assert_one_line_error(
        &out,
        &[
            nan.to_str().unwrap(),
            "the weights are not finite",
            &format!("tensor `{key}` holds {n} non-finite values"),
        ],
    );
    // Finite weights whose outputs overflow: the loss is not finite.
    let (huge, _, _) = weights_filled(&weights, 3e38, &dir, "huge.safetensors");
    let args = ["eval", "--weights", huge.to_str().unwrap()];
    let out = run_env(&args, &[], &[&huge]);
    assert_one_line_error(&out, &[huge.to_str().unwrap(), "the loss on mnist is NaN"]);
}

#[test]
fn forward_of_an_empty_batch_is_an_error() {
    let dir = scratch("empty-batch");
    let (_, run) = csv_run(&dir);
    let weights = run.join("best.safetensors");
    // An empty batch: [0, 2, 1, 1].
    let mut input = ventral_nn::checkpoint::StateDict::new();
    input.insert(
        "input",
        TensorRecord::new("input", vec![0, 2, 1, 1], TensorData::F32(vec![])).unwrap(),
    );
    let input_path = dir.join("empty.safetensors");
    checkpoint::save(&input_path, &input).unwrap();
    let output = dir.join("out.safetensors");
    let args = [
        "forward",
        "--model",
        "linear",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    let out = run_env(&args, &[], &[&input_path, &weights]);
    assert_one_line_error(
        &out,
        &[
            input_path.to_str().unwrap(),
            "an empty batch, forward needs at least one sample",
        ],
    );
    assert!(!output.exists());
}

#[test]
fn predict_refuses_weights_whose_classifier_is_over_the_class_limit() {
    let dir = scratch("many-classes");
    let (_, run) = csv_run(&dir);
    let weights = run.join("best.safetensors");
    // The linear model's last parameter (its bias) with 20,000 outputs: the model built for
    // it would have 20,000 classes.
    let mut state = checkpoint::load(&weights).unwrap();
    let key = state
        .keys()
        .find(|k| k.ends_with("bias"))
        .unwrap()
        .to_string();
    state.insert(
        key.clone(),
        TensorRecord::new(&key, vec![20_000], TensorData::F32(vec![0.0; 20_000])).unwrap(),
    );
    let wide = dir.join("wide.safetensors");
    checkpoint::save(&wide, &state).unwrap();
    let pgm = dir.join("x.pgm");
    std::fs::write(&pgm, b"P5 2 2 255\n0123").unwrap();
    let out = predict_linear(&wide, &[], &pgm, &[]);
    assert_one_line_error(
        &out,
        &[
            wide.to_str().unwrap(),
            &format!("`{key}` gives 20000 classes, more than the limit of 10000"),
        ],
    );
}
