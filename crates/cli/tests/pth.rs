//! PyTorch checkpoints through the binary: `ventral convert`, `train --init x.pth`, and
//! `forward` giving the same logits from a `.pth` as from its safetensors twin.

mod common;
#[path = "../../nn/tests/pth_common/mod.rs"]
mod pth_common;

use std::path::{Path, PathBuf};

use common::{assert_one_line_error, run, run_ok, scratch, train};
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};
use ventral_nn::load_state_dict;

/// The files PyTorch wrote (crates/nn/tests/data/pth/make_pth_fixtures.py).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nn/tests/data/pth")
        .join(name)
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn convert_writes_safetensors_that_load_strictly_into_the_zoo_models() {
    let dir = scratch("pth-convert");
    for (model, file) in [("lenet5", "lenet5.pth"), ("resnet20", "resnet20.pth")] {
        let out = dir.join(format!("{model}.safetensors"));
        let stdout = run_ok(&["convert", arg(&fixture(file)), arg(&out)]).stdout;
        let converted = checkpoint::load(&out).unwrap();
        let text = String::from_utf8_lossy(&stdout).into_owned();
        assert!(
            text.contains(&format!("{} tensors", converted.len())),
            "{text}"
        );
        // Same tensors as the .pth itself, and exactly the zoo model's layout.
        let original = checkpoint::load(&fixture(file)).unwrap();
        for (name, record) in original.iter() {
            assert_eq!(converted.get(name), Some(record), "{model} {name}");
        }
        let mut zoo = ventral_models::build(model, 10, 0).unwrap();
        load_state_dict(zoo.as_mut(), &converted).unwrap();
    }
}

/// A formula input of `shape` in a safetensors file under `input`.
fn input_file(dir: &Path, shape: [usize; 4]) -> PathBuf {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let mut state = StateDict::new();
    state.insert(
        "input",
        TensorRecord::new("input", shape.to_vec(), TensorData::F32(values)).unwrap(),
    );
    let path = dir.join("input.safetensors");
    checkpoint::save(&path, &state).unwrap();
    path
}

fn logits(model: &str, weights: &Path, input: &Path, out: &Path) -> Vec<f32> {
    run_ok(&[
        "forward",
        "--model",
        model,
        "--weights",
        arg(weights),
        "--input",
        arg(input),
        "--output",
        arg(out),
    ]);
    let state = checkpoint::load(out).unwrap();
    state.get("output").unwrap().as_f32().unwrap().to_vec()
}

#[test]
fn a_pth_gives_the_same_logits_as_its_safetensors_twin() {
    let dir = scratch("pth-logits");
    let input = input_file(&dir, [2, 1, 28, 28]);
    let from_pth = logits("lenet5", &fixture("lenet5.pth"), &input, &dir.join("a.st"));
    let from_twin = logits(
        "lenet5",
        &fixture("lenet5.safetensors"),
        &input,
        &dir.join("b.st"),
    );
    assert_eq!(from_pth.len(), 20);
    assert_eq!(from_pth, from_twin);
    assert!(from_pth.iter().any(|&v| v != 0.0), "{from_pth:?}");
}

#[test]
fn train_init_from_a_pth_runs_exactly_as_from_its_twin() {
    let dir = scratch("pth-init");
    let mut last = Vec::new();
    for (name, weights) in [("pth", "lenet5.pth"), ("twin", "lenet5.safetensors")] {
        let out = dir.join(name);
        let init = fixture(weights);
        let result = train(
            &out,
            &[
                "--init",
                arg(&init),
                "--epochs",
                "1",
                "--limit-train",
                "256",
            ],
        );
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        last.push(checkpoint::load(&out.join("last.safetensors")).unwrap());
    }
    assert_eq!(
        last[0], last[1],
        "the same weights must train to the same bits"
    );
    // And the run did start from them: one epoch moves the weights off the file's.
    let start = checkpoint::load(&fixture("lenet5.pth")).unwrap();
    assert_ne!(start.get("fc3.bias"), last[0].get("fc3.bias"));
}

#[test]
fn corrupt_and_hostile_pth_files_are_one_line_errors() {
    let dir = scratch("pth-bad");
    let lenet = std::fs::read(fixture("lenet5.pth")).unwrap();
    let truncated = dir.join("truncated.pth");
    std::fs::write(&truncated, &lenet[..lenet.len() / 3]).unwrap();
    let out = run(&["convert", arg(&truncated), arg(&dir.join("x.safetensors"))]);
    assert_one_line_error(
        &out,
        &["truncated.pth", "not a loadable PyTorch checkpoint"],
    );
    assert!(!dir.join("x.safetensors").exists());

    let run_dir = dir.join("run");
    let out = train(&run_dir, &["--init", arg(&truncated), "--epochs", "1"]);
    assert_one_line_error(&out, &["--init", "truncated.pth", "zip archive"]);

    // An archive whose pickle would call os.system("ls").
    let hostile = dir.join("hostile.pth");
    let pickle = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
    std::fs::write(&hostile, pth_common::archive(pickle, &[])).unwrap();
    let out = run(&["convert", arg(&hostile), arg(&dir.join("y.safetensors"))]);
    assert_one_line_error(&out, &["hostile.pth", "`os.system`", "not allowed"]);
    let out = train(
        &dir.join("run1"),
        &["--init", arg(&hostile), "--epochs", "1"],
    );
    assert_one_line_error(&out, &["`os.system`"]);

    let resnet = fixture("resnet20.pth");
    let out = train(
        &dir.join("run2"),
        &["--init", arg(&resnet), "--epochs", "1"],
    );
    assert_one_line_error(&out, &["does not fit model lenet5"]);
}
