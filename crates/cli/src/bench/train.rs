//! `ventral bench train`: training and inference throughput of whole models on synthetic
//! data — forward, backward and an SGD-with-momentum update per step.

use anyhow::Result;
use ventral_models::build;
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{loss, no_grad, Mode, Optimizer, Tensor};

use super::peak::round;
use super::timing::median_seconds;

/// `(model, batch, [C, H, W], classes)`: the three workloads.
const WORKLOADS: [(&str, usize, [usize; 3], usize); 3] = [
    ("lenet5", 64, [1, 28, 28], 10),
    ("resnet20", 128, [3, 32, 32], 10),
    ("vgg11_cifar", 64, [3, 32, 32], 10),
];

/// Runs the benchmark and prints a table or JSON lines.
pub fn run(threads: usize, only: &[String], reps: usize, json: bool) -> Result<()> {
    if let Some(unknown) = only
        .iter()
        .find(|m| !WORKLOADS.iter().any(|w| w.0 == m.as_str()))
    {
        anyhow::bail!(
            "--model {unknown}: bench train measures {}",
            WORKLOADS.map(|w| w.0).join(", ")
        );
    }
    if !json {
        println!("training throughput, {threads} thread(s), median of {reps} steps after warm-up (synthetic data)");
        println!(
            "{:>12}  {:>6}  {:>12}  {:>9}  {:>14}",
            "model", "batch", "train img/s", "step ms", "inference img/s"
        );
    }
    for (name, batch, [c, h, w], classes) in WORKLOADS {
        if !only.is_empty() && !only.iter().any(|m| m == name) {
            continue;
        }
        let mut model = build(name, classes, 0)?;
        let x = Tensor::rand_normal(vec![batch, c, h, w], 0.0, 1.0, 1)?;
        let labels: Vec<usize> = (0..batch).map(|i| (i * 7) % classes).collect();
        let mut opt = Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::new(0.01)
        })?;
        model.set_mode(Mode::Train);
        let mut step = || -> Result<()> {
            let logits = model.forward(&x)?;
            let l = loss::cross_entropy(&logits, &labels, 0.0)?;
            let grads = l.backward()?;
            opt.step(model.as_mut(), &grads)?;
            Ok(())
        };
        step()?; // warm-up: allocate buffers, fault in pages
        let mut failure = None;
        let train_s = median_seconds(reps, || {
            if let Err(e) = step() {
                failure.get_or_insert(e);
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        model.set_mode(Mode::Eval);
        let infer_s = median_seconds(reps, || {
            let _ = no_grad(|| model.forward(&x));
        });
        let (train_ips, infer_ips) = (batch as f64 / train_s, batch as f64 / infer_s);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "train", "model": name, "batch": batch, "threads": threads,
                    "train_images_per_sec": round(train_ips), "step_ms": (train_s * 1e5).round() / 100.0,
                    "inference_images_per_sec": round(infer_ips),
                })
            );
        } else {
            println!(
                "{name:>12}  {batch:>6}  {train_ips:>12.0}  {:>9.2}  {infer_ips:>14.0}",
                train_s * 1e3
            );
        }
    }
    Ok(())
}
