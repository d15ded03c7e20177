//! `ventral forward`: a model in eval mode on the tensor stored under `input` in a
//! safetensors file, writing the result under `output` — for comparing with other
//! frameworks (PyTorch: `safetensors.torch.save_file({"input": x}, "in.safetensors")`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ventral_nn::Tensor;
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};

use super::load_model;

/// Arguments of `ventral forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Model architecture the weights belong to.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// A state dict: safetensors (e.g. `runs/latest/best.safetensors`) or PyTorch `.pth`.
    #[arg(long)]
    weights: PathBuf,
    /// A safetensors file holding an F32 tensor `input` of shape [N, C, H, W].
    #[arg(long)]
    input: PathBuf,
    /// Where to write the model's output, as the F32 tensor `output` ([N, classes] logits).
    #[arg(long)]
    output: PathBuf,
    /// Number of classes (default: read from the weights).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    num_classes: Option<u32>,
}

/// Runs `ventral forward`.
///
/// # Errors
/// Unreadable files, no F32 `input` tensor of rank 4, weights of another architecture, an
/// input shape the model does not take.
pub fn forward(args: ForwardArgs) -> Result<()> {
    for (flag, input) in [("--weights", &args.weights), ("--input", &args.input)] {
        if same_file(&args.output, input) {
            bail!(
                "--output {} is the {flag} file: writing it would destroy an input; pick another --output",
                args.output.display()
            );
        }
    }
    let tensors = checkpoint::load(&args.input)?;
    let record = tensors
        .get("input")
        .with_context(|| format!("{} has no tensor named `input`", args.input.display()))?;
    let Some(values) = record.as_f32() else {
        bail!(
            "{}: `input` must be F32, it is {}",
            args.input.display(),
            record.dtype()
        );
    };
    let &[n, c, h, w] = record.shape() else {
        bail!(
            "{}: `input` must have shape [N, C, H, W], it has {:?}",
            args.input.display(),
            record.shape()
        );
    };
    if n == 0 {
        bail!(
            "{}: `input` has shape [0, {c}, {h}, {w}]: an empty batch, forward needs at least one sample",
            args.input.display()
        );
    }
    let (mut model, _) = load_model(
        &args.model,
        &args.weights,
        [c, h, w],
        args.num_classes.map(|k| k as usize),
    )?;
    let x = Tensor::from_slice(values, [n, c, h, w])?;
    let y = ventral_train::predict(model.as_mut(), &x).with_context(|| {
        format!(
            "model {} cannot take an input of shape [{n}, {c}, {h}, {w}]",
            args.model
        )
    })?;
    let mut out = StateDict::new();
    out.insert(
        "output",
        TensorRecord::new("output", y.dims().to_vec(), TensorData::F32(y.to_vec()))?,
    );
    checkpoint::save(&args.output, &out)?;
    println!(
        "{}: output {:?} from input [{n}, {c}, {h}, {w}]",
        args.output.display(),
        y.dims()
    );
    Ok(())
}

/// Whether `a` and `b` name the same file (the same path, or the same file once links and
/// `..` are resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
