//! `ventral bench infer`: inference throughput of any zoo model at its own input size, in
//! eval mode and without a graph, on random N(0, 1) inputs: the same measure as
//! `../shared/peers/infer_torch.py` takes of torchvision's models (`compare.sh` and that
//! script put the two side by side on one machine).

use anyhow::{Context, Result};
use ventral_models::{build, find};
use ventral_nn::{Tensor, parameter_count};

use super::peak::round;
use super::timing::median_seconds;
use super::train_profile::{Profiled, print as print_profile, profile_steps};
use crate::train::check_model_name;

/// The models measured when none are named: torchvision's ResNet-18 and ResNet-50.
const DEFAULT_MODELS: [&str; 2] = ["resnet18", "resnet50"];

/// Measures each of `models` (default [`DEFAULT_MODELS`]) at batch `batch`; with `profile`,
/// prints where a batch's time goes by op kind instead of the throughput.
///
/// # Errors
/// An unknown model or one without a forward pass of tensors (the classic learners), or
/// a model that rejects its input.
pub fn run(
    models: &[String],
    batch: usize,
    threads: usize,
    reps: usize,
    json: bool,
    profile: bool,
) -> Result<()> {
    let names: Vec<&str> = if models.is_empty() {
        DEFAULT_MODELS.to_vec()
    } else {
        models.iter().map(String::as_str).collect()
    };
    // Every name is checked before anything is measured.
    let mut infos = Vec::new();
    for name in &names {
        check_model_name(name)?;
        infos.push(find(name).context("checked above")?);
    }
    if !json && !profile {
        println!(
            "inference, {threads} thread(s), batch {batch}, eval mode, median of {reps} samples (random N(0, 1) inputs)"
        );
        println!(
            "{:>14}  {:>10}  {:>12}  {:>12}  {:>10}",
            "model", "input", "params", "img/s", "ms/batch"
        );
    }
    for info in infos {
        let [c, h, w] = info.input;
        let mut model = build(info.name, info.default_classes, 0)?;
        let params = parameter_count(model.as_mut());
        let x = Tensor::rand_normal(vec![batch, c, h, w], 0.0, 1.0, 1)?;
        // The first call checks the model takes the input (and warms up).
        ventral_train::predict(model.as_mut(), &x)?;
        if profile {
            let p = profile_steps(reps, || {
                Ok(ventral_train::predict(model.as_mut(), &x).map(drop)?)
            })?;
            print_profile(
                &p,
                Profiled::Inference,
                info.name,
                batch,
                threads,
                reps,
                json,
            );
            continue;
        }
        let seconds = median_seconds(reps, || {
            let _ = ventral_train::predict(model.as_mut(), &x);
        });
        let ips = batch as f64 / seconds;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "infer", "model": info.name, "batch": batch, "threads": threads,
                    "input": info.input, "parameters": params,
                    "images_per_sec": round(ips), "ms_per_batch": (seconds * 1e5).round() / 100.0,
                })
            );
        } else {
            println!(
                "{:>14}  {:>10}  {params:>12}  {ips:>12.1}  {:>10.2}",
                info.name,
                format!("{c}x{h}x{w}"),
                seconds * 1e3
            );
        }
    }
    Ok(())
}
