//! `ventral train --clip-grad-norm`: recorded in config.json, resumed from it, and a tight
//! bound changes the run (a loose one does not).

mod common;

use common::{bytes, scratch, train_ok};
use serde_json::Value;

#[test]
fn clip_grad_norm_is_recorded_and_acts() {
    let free = scratch("clip-free");
    let loose = scratch("clip-loose");
    let tight = scratch("clip-tight");
    train_ok(&free, &["--epochs", "1"]);
    train_ok(&loose, &["--epochs", "1", "--clip-grad-norm", "1e9"]);
    train_ok(&tight, &["--epochs", "1", "--clip-grad-norm", "0.01"]);
    let config: Value =
        serde_json::from_slice(&bytes(&tight, "config.json")).expect("config.json is JSON");
    assert_eq!(config["args"]["clip_grad_norm"], 0.01, "{config}");
    // A bound no step reaches leaves every bit as it was; a tight one changes the weights.
    assert_eq!(
        bytes(&free, "last.safetensors"),
        bytes(&loose, "last.safetensors")
    );
    assert_ne!(
        bytes(&free, "last.safetensors"),
        bytes(&tight, "last.safetensors")
    );
    // Resuming takes the bound from config.json: a second epoch runs and repeating the same
    // flag is accepted.
    common::run_ok(&[
        "train",
        "--resume",
        tight.to_str().unwrap(),
        "--epochs",
        "2",
        "--clip-grad-norm",
        "0.01",
        "--quiet",
    ]);
}
