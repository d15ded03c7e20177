//! Every kind of bad input gives one clear line on stderr and a non-zero exit — never a
//! panic or a backtrace (the binary runs with `RUST_BACKTRACE=1`).

mod common;

use common::{assert_one_line_error, run, scratch};
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};

#[test]
fn unknown_names_list_the_valid_ones() {
    let out = run(&["train", "--model", "nosuch"]);
    assert_one_line_error(&out, &["unknown model `nosuch`", "lenet5", "resnet20"]);
    let dir = scratch("unknown-dataset");
    let out = run(&[
        "train",
        "--dataset",
        "nosuch",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_one_line_error(
        &out,
        &["unknown dataset", "mnist", "fashion-mnist", "csv:PATH"],
    );
    let out = run(&["train", "--optimizer", "nosuch"]);
    assert_one_line_error(
        &out,
        &["nosuch", "sgd", "momentum", "adam", "adamw", "rmsprop"],
    );
    let out = run(&["train", "--schedule", "linear"]);
    assert_one_line_error(&out, &["linear", "cosine", "onecycle"]);
    let out = run(&["eval", "--model", "nosuch", "--weights", "x.safetensors"]);
    assert_one_line_error(&out, &["nosuch", "lenet5"]);
    let out = run(&["gradcheck", "--op", "nosuch"]);
    assert_one_line_error(&out, &["unknown op `nosuch`", "conv2d", "Linear"]);
    let out = run(&["nosuch"]);
    assert_one_line_error(&out, &["nosuch"]);
}

#[test]
fn nonsense_numbers() {
    let out = run(&["train", "--lr", "-1"]);
    assert_one_line_error(&out, &["--lr", "must be a finite number >= 0, got -1"]);
    let out = run(&["train", "--lr", "nan"]);
    assert_one_line_error(&out, &["--lr"]);
    let out = run(&["train", "--batch-size", "0"]);
    assert_one_line_error(&out, &["--batch-size", "0"]);
    let out = run(&["train", "--epochs", "abc"]);
    assert_one_line_error(&out, &["--epochs", "abc"]);
    let out = run(&["train", "--epochs", "0"]);
    assert_one_line_error(&out, &["--epochs", "0"]);
    let out = run(&["train", "--weight-decay", "-0.1"]);
    assert_one_line_error(&out, &["--weight-decay", "-0.1"]);
    let out = run(&["train", "--threads", "0"]);
    assert_one_line_error(&out, &["--threads", "0"]);
    let out = run(&["graph", "--input", "1x0x28", "--out", "g.dot"]);
    assert_one_line_error(&out, &["--input", "1x0x28"]);
}

#[test]
fn missing_or_corrupt_data() {
    let out_dir = scratch("missing-data");
    let out = out_dir.to_str().unwrap();
    let missing = out_dir.join("no-such-dir");
    let result = run(&[
        "train",
        "--data-dir",
        missing.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert_one_line_error(&result, &["no-such-dir", "train-images-idx3-ubyte"]);

    // A file with the right name and the wrong content.
    let corrupt = scratch("corrupt-data");
    std::fs::write(
        corrupt.join("train-images-idx3-ubyte"),
        b"this is not an IDX file",
    )
    .unwrap();
    std::fs::write(corrupt.join("train-labels-idx1-ubyte"), b"nor is this").unwrap();
    let result = run(&[
        "train",
        "--data-dir",
        corrupt.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert_one_line_error(&result, &["train-images-idx3-ubyte", "magic"]);

    // A gzip file cut short.
    let full = std::fs::read(common::data_dir("mnist").join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::write(corrupt.join("labels.gz"), &full[..full.len() / 2]).unwrap();
    let images = common::data_dir("mnist").join("t10k-images-idx3-ubyte.gz");
    std::fs::copy(images, corrupt.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::remove_file(corrupt.join("train-images-idx3-ubyte")).unwrap();
    std::fs::rename(
        corrupt.join("labels.gz"),
        corrupt.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    std::fs::remove_file(corrupt.join("train-labels-idx1-ubyte")).unwrap();
    let result = run(&[
        "train",
        "--data-dir",
        corrupt.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert_one_line_error(&result, &["train-labels-idx1-ubyte.gz"]);

    let result = run(&["train", "--dataset", "csv:/no/such/file.csv", "--out", out]);
    assert_one_line_error(&result, &["/no/such/file.csv"]);
}

fn write_csv(dir: &std::path::Path) -> String {
    // Two features, two classes, 20 rows.
    let rows: String = (0..20)
        .map(|i| format!("{},{},{}\n", i as f32 / 10.0, (i % 7) as f32, i % 2))
        .collect();
    let path = dir.join("points.csv");
    std::fs::write(&path, format!("x,y,class\n{rows}")).unwrap();
    format!("csv:{}", path.display())
}

#[test]
fn wrong_input_shape() {
    let dir = scratch("wrong-shape");
    let dataset = write_csv(&dir);
    let out = dir.join("run");
    let result = run(&[
        "train",
        "--model",
        "lenet5",
        "--dataset",
        &dataset,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_line_error(&result, &["lenet5", "cannot take", "2x1x1"]);
    // A fully connected model sizes itself from the samples and trains.
    common::run_ok(&[
        "train",
        "--model",
        "mlp",
        "--dataset",
        &dataset,
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
}

fn fake_checkpoint(path: &std::path::Path) {
    let mut state = StateDict::new();
    let w = TensorRecord::new("fc.weight", vec![2, 2], TensorData::F32(vec![0.0; 4])).unwrap();
    state.insert("fc.weight", w);
    checkpoint::save(path, &state).unwrap();
}

#[test]
fn checkpoint_of_another_architecture_or_corrupt() {
    let dir = scratch("wrong-checkpoint");
    let other = dir.join("other.safetensors");
    fake_checkpoint(&other);
    let out = dir.join("run");
    let (other_s, out_s) = (other.to_str().unwrap(), out.to_str().unwrap());
    let result = run(&[
        "train",
        "--init",
        other_s,
        "--limit-train",
        "64",
        "--out",
        out_s,
    ]);
    assert_one_line_error(
        &result,
        &["--init", "does not fit model lenet5", "missing keys"],
    );
    let result = run(&["eval", "--weights", other_s]);
    assert_one_line_error(&result, &["does not fit model lenet5"]);
    let result = run(&[
        "forward",
        "--weights",
        other_s,
        "--input",
        other_s,
        "--output",
        "o.safetensors",
    ]);
    assert_one_line_error(&result, &["no tensor named `input`"]);

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    let result = run(&[
        "train",
        "--init",
        garbage.to_str().unwrap(),
        "--limit-train",
        "64",
        "--out",
        out_s,
    ]);
    assert_one_line_error(&result, &["garbage.safetensors", "not a valid checkpoint"]);
    let result = run(&["predict", "--weights", "/no/such.safetensors", "x.png"]);
    assert_one_line_error(&result, &["/no/such.safetensors"]);
}

#[test]
fn unwritable_output_directory() {
    let result = run(&["train", "--out", "/proc/ventral-cannot-write-here"]);
    assert_one_line_error(&result, &["/proc/ventral-cannot-write-here"]);
    let result = run(&["graph", "--out", "/proc/ventral-no/graph.dot"]);
    assert_one_line_error(&result, &["/proc/ventral-no/graph.dot"]);
}

#[test]
fn resume_from_a_directory_that_holds_no_run() {
    let dir = scratch("resume-nothing");
    let result = run(&["train", "--resume", dir.to_str().unwrap()]);
    assert_one_line_error(&result, &["cannot resume", "config.json"]);
}

#[test]
fn distributed_outside_mpirun() {
    // Without the `mpi` feature the build says how to get one; with it, that the run needs
    // an MPI launcher. Either way, before any work and in one line.
    let dir = scratch("distributed-alone");
    let out = run(&["train", "--distributed", "--out", dir.to_str().unwrap()]);
    let line = assert_one_line_error(&out, &["--distributed"]);
    let expected = if cfg!(feature = "mpi") {
        "mpirun -np N"
    } else {
        "--features mpi"
    };
    assert!(line.contains(expected), "{line}");
}
