//! `ventral models` and `ventral summary`, run as a user would.

mod common;

use common::{run, run_ok};

#[test]
fn models_lists_the_zoo_with_parameter_counts() {
    let out = String::from_utf8(run_ok(&["models"]).stdout).unwrap();
    // Counts from torchvision (and the reference definitions for lenet5 and resnet20).
    for (name, count) in [
        ("lenet5", "61,706"),
        ("resnet18", "11,689,512"),
        ("resnet20", "269,722"),
        ("vgg16", "138,357,544"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        assert!(line.contains(count), "{line}");
    }
    let json = String::from_utf8(run_ok(&["models", "--json"]).stdout).unwrap();
    let lenet: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["model"] == "lenet5")
        .unwrap();
    assert_eq!(lenet["parameters"], 61_706);
}

#[test]
fn summary_tables_layers_and_totals() {
    let out = String::from_utf8(run_ok(&["summary", "--model", "lenet5"]).stdout).unwrap();
    // conv1: 6 x 1 x 5 x 5 + 6 = 156 parameters, 6 x 28 x 28 x 25 = 117,600 MACs.
    let conv1 = out.lines().find(|l| l.starts_with("conv1")).unwrap();
    assert!(
        conv1.contains("156") && conv1.contains("117,600"),
        "{conv1}"
    );
    assert!(out.contains("parameters: 61,706"), "{out}");
    // A bigger input changes the shapes, not the parameters of the convolutions.
    let json = String::from_utf8(
        run_ok(&[
            "summary", "--model", "resnet18", "--input", "3x64x64", "--json",
        ])
        .stdout,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["parameters"], 11_689_512);
    assert_eq!(v["output"], serde_json::json!([1000]));
}

#[test]
fn summary_rejects_unknown_models_and_bad_sizes() {
    for args in [
        &["summary", "--model", "resnet7"][..],
        &["summary", "--input", "3x0x4"][..],
    ] {
        let out = run(args);
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
