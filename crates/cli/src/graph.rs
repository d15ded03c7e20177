//! `ventral graph`: the computational graph of one training step of a model — forward on a
//! zero input of its shape, cross-entropy against class 0, backward — as Graphviz DOT, each
//! node with its op, layer path, shape and gradient.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ventral_autograd::{BackwardOptions, Gradients, to_dot};
use ventral_models::{build_for_input, find};
use ventral_nn::checkpoint::write_atomically;
use ventral_nn::{Mode, Tensor, loss};

use crate::train::check_model_name;

/// Arguments of `ventral graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Model to draw.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// Where to write the DOT file (render with `dot -Tsvg FILE -o graph.svg`).
    #[arg(long)]
    out: PathBuf,
    /// Input shape C×H×W, e.g. `1x28x28` (default: the model's own).
    #[arg(long, value_parser = parse_shape)]
    input: Option<[usize; 3]>,
    /// Number of classes (default: the model's own).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    num_classes: Option<u32>,
}

fn parse_shape(s: &str) -> Result<[usize; 3], String> {
    let dims: Vec<usize> = s
        .split(['x', 'X', '×', ','])
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{s}` is not C×H×W, e.g. 1x28x28"))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(format!(
            "`{s}` is not C×H×W with positive sizes, e.g. 1x28x28"
        )),
    }
}

/// Runs `ventral graph`.
///
/// # Errors
/// An unknown model, an input it does not take, an unwritable output.
pub fn run(args: GraphArgs) -> Result<()> {
    check_model_name(&args.model)?;
    let info = find(&args.model).context("checked above")?;
    let [c, h, w] = args.input.unwrap_or(info.input);
    let classes = args
        .num_classes
        .map_or(info.default_classes, |k| k as usize);
    let mut model = build_for_input(&args.model, [c, h, w], classes, 0)?;
    model.set_mode(Mode::Train);
    let x = Tensor::zeros([1, c, h, w])?;
    let logits = model
        .forward(&x)
        .with_context(|| format!("model {} cannot take a {c}x{h}x{w} input", args.model))?;
    if logits.dims() != [1, classes] {
        bail!(
            "model {} gives outputs of shape {:?}",
            args.model,
            logits.dims()
        );
    }
    let loss = loss::cross_entropy(&logits, &[0], 0.0)?;
    let mut grads = Gradients::new();
    loss.backward_with(
        &mut grads,
        BackwardOptions {
            retain_graph: true,
            keep_intermediate: true,
        },
    )?;
    let dot = to_dot(&loss, Some(&grads));
    write_atomically(&args.out, dot.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let nodes = dot.lines().filter(|l| l.contains("[shape=")).count();
    let edges = dot.lines().filter(|l| l.contains("->")).count();
    println!(
        "{}: {nodes} nodes, {edges} edges (one forward + backward of {} on a {c}x{h}x{w} zero input); render with `dot -Tsvg {} -o graph.svg`",
        args.out.display(),
        args.model,
        args.out.display()
    );
    Ok(())
}
