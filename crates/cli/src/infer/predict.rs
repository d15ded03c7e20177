//! `ventral predict`: class probabilities of saved weights for PNG / JPEG / PGM images.
//!
//! Each image is converted to the model's channels (grey as BT.601 luma), resized to its
//! input size with a bilinear filter, scaled to `[0, 1]`, optionally inverted (MNIST digits
//! are light on dark), and normalised exactly as training normalised: with the per-channel
//! mean and standard deviation stored in the run's `config.json` (the one beside the weights,
//! or `--config`), or — without one — computed from the training split of `--dataset`, as
//! `ventral train` computes them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use ventral_models::find;
use ventral_nn::Tensor;
use ventral_nn::data::{Dataset, Split};

use super::image::{centre_crop, read, to_planes};
use super::{load_model, load_model_as};
use crate::data_dir::load_named;
use crate::train::run_for;

/// Arguments of `ventral predict`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Preprocessing: grey (BT.601 luma) or RGB as the model needs, transparent pixels over white,
bilinear resize to the model's input size (for a run trained on an image folder, of the
centred part of the image with the input's aspect ratio, as its evaluation did), values in
[0, 1], inversion (see --invert; never by default for an image-folder run), then
(x - mean) / std per channel with the training set's statistics: from the run's config.json
(written by `ventral train` beside its checkpoints) when there is one, else computed from the
training split of --dataset exactly as `ventral train` does.")]
pub struct PredictArgs {
    /// Model architecture the weights belong to.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// A state dict: safetensors (e.g. `runs/latest/best.safetensors`) or PyTorch `.pth`.
    #[arg(long)]
    weights: PathBuf,
    /// PNG, JPEG or binary PGM/PPM images.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// The training run's config.json (default: the one beside --weights, if any).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset whose training split gives the normalisation when there is no config.json.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Directory holding the dataset's files (default: the repository's `data/<dataset>`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Invert grey images (1 - x). `auto` inverts a grey image whose border is mostly light,
    /// so dark-on-light drawings match MNIST's light-on-dark digits (not for a run trained on
    /// an image folder, whose images are fed as they are).
    #[arg(long, value_enum, default_value_t = Invert::Auto)]
    invert: Invert,
    /// Number of classes (default: read from the weights).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    num_classes: Option<u32>,
    /// Print one JSON object per image instead of text.
    #[arg(long)]
    json: bool,
}

/// When to invert grey images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Invert {
    /// When the border is mostly light.
    Auto,
    /// Always.
    Yes,
    /// Never.
    No,
}

/// What preprocessing needs to know about the training run.
struct Preprocess {
    input: [usize; 3],
    mean: Vec<f32>,
    std: Vec<f32>,
    class_names: Option<Vec<String>>,
    source: String,
    /// The run trained on an image folder: feed the centre of each image (as its evaluation
    /// did) and never invert it unless asked.
    folder: bool,
}

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

fn from_config(path: &Path) -> Result<Preprocess> {
    // A run's config.json is a few KB; 16 MiB bounds what a wrong path can cost.
    let bytes = ventral_nn::limits::read_regular(path, 16 << 20)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let config: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let shape: Option<Vec<usize>> = config["input_shape"]
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|v| v as usize)).collect());
    let (Some(&[c, h, w]), Some(mean), Some(std)) = (
        shape.as_deref(),
        floats(&config["normalize"]["mean"]),
        floats(&config["normalize"]["std"]),
    ) else {
        bail!(
            "{} has no input_shape and normalize entries (written by ventral train)",
            path.display()
        );
    };
    let class_names = config["class_names"]
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect());
    Ok(Preprocess {
        input: [c, h, w],
        mean,
        std,
        class_names,
        source: path.display().to_string(),
        folder: config["args"]["dataset"]
            .as_str()
            .is_some_and(|d| d.starts_with("folder:")),
    })
}

fn from_dataset(args: &PredictArgs) -> Result<Preprocess> {
    let info = find(&args.model);
    let train = load_named(&args.dataset, args.data_dir.as_deref(), Split::Train)?;
    let (mean, std) = train.channel_mean_std();
    let shape = train.sample_shape();
    let input = match info {
        Some(m) if m.name != "mlp" && m.name != "linear" => m.input,
        _ => shape,
    };
    Ok(Preprocess {
        input,
        mean,
        std,
        class_names: train.class_names().map(<[String]>::to_vec),
        source: format!("the {} training set", args.dataset),
        folder: false,
    })
}

/// Runs `ventral predict`.
///
/// # Errors
/// Unreadable images or weights, weights of another architecture, no way to normalise.
pub fn predict(args: PredictArgs) -> Result<()> {
    let beside = args
        .weights
        .parent()
        .map(|d| d.join("config.json"))
        .filter(|p| p.is_file());
    let pre = match args.config.clone().or(beside) {
        Some(path) => from_config(&path)?,
        None => from_dataset(&args)?,
    };
    let [c, h, w] = pre.input;
    if pre.mean.len() != c || pre.std.len() != c {
        bail!(
            "{} gives statistics for {} channels, model {} takes {c}",
            pre.source,
            pre.mean.len(),
            args.model
        );
    }
    // A run of this model beside the weights (or --config): rebuilt as it was adapted.
    let run = run_for(&args.model, args.config.as_deref(), &args.weights)?;
    let (mut model, classes) = match run {
        Some(run) => {
            let mut options = run.options.input(pre.input);
            if let Some(k) = args.num_classes {
                options.num_classes = k as usize;
            }
            let model = load_model_as(&args.model, &args.weights, &options)?;
            (model, options.num_classes)
        }
        None => load_model(
            &args.model,
            &args.weights,
            pre.input,
            args.num_classes.map(|k| k as usize),
        )?,
    };
    let mut batch = Vec::with_capacity(args.images.len() * c * h * w);
    for path in &args.images {
        let mut image = read(path)?;
        let mut invert = args.invert;
        if pre.folder {
            image = centre_crop(&image, h, w);
            if invert == Invert::Auto {
                invert = Invert::No;
            }
        }
        let mut planes = to_planes(&image, c, h, w);
        if c == 1 && should_invert(invert, &planes, h, w) {
            planes.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
        for (ch, plane) in planes.chunks_exact_mut(h * w).enumerate() {
            plane
                .iter_mut()
                .for_each(|v| *v = (*v - pre.mean[ch]) / pre.std[ch]);
        }
        batch.extend(planes);
    }
    let n = args.images.len();
    let x = Tensor::from_vec(batch, [n, c, h, w])?;
    let probs = ventral_train::predict(model.as_mut(), &x)
        .and_then(|logits| Ok(logits.softmax(1).map_err(ventral_nn::Error::from)?))
        .with_context(|| format!("model {} failed on {n}x{c}x{h}x{w} images", args.model))?
        .to_vec();
    let name = |k: usize| {
        pre.class_names
            .as_ref()
            .and_then(|names| names.get(k).cloned())
            .unwrap_or_else(|| k.to_string())
    };
    for (path, p) in args.images.iter().zip(probs.chunks_exact(classes)) {
        let best = (0..classes)
            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
            .unwrap_or(0);
        if args.json {
            println!(
                "{}",
                json!({"image": path, "class": best, "label": name(best), "probabilities": p})
            );
        } else {
            println!(
                "{}: {} ({:.2}%)",
                path.display(),
                name(best),
                100.0 * p[best]
            );
            let all: Vec<String> = (0..classes)
                .map(|k| format!("{} {:.4}", name(k), p[k]))
                .collect();
            println!("  {}", all.join("  "));
        }
    }
    if !args.json {
        println!("(normalised with the statistics of {})", pre.source);
    }
    Ok(())
}

fn should_invert(mode: Invert, plane: &[f32], h: usize, w: usize) -> bool {
    match mode {
        Invert::Yes => true,
        Invert::No => false,
        Invert::Auto => {
            let border: Vec<f32> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (y, x)))
                .filter(|&(y, x)| y == 0 || x == 0 || y + 1 == h || x + 1 == w)
                .map(|(y, x)| plane[y * w + x])
                .collect();
            border.iter().sum::<f32>() / border.len().max(1) as f32 > 0.5
        }
    }
}
