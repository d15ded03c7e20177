//! `ventral models` and `ventral summary`: what the zoo holds, and one model layer by layer.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use ventral_models::{ModelOptions, Training, build_for_input, build_with, find, models, summary};
use ventral_nn::init::shapes_only;
use ventral_nn::parameter_count;

/// Arguments of `ventral models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the zoo, one line per model: name, year, paper, parameters.
///
/// # Errors
/// If a model cannot be built (a bug).
pub fn list(args: ModelsArgs) -> Result<()> {
    if !args.json {
        println!(
            "{:<14} {:>4}  {:>12}  {:<12} paper",
            "model", "year", "parameters", "input"
        );
    }
    for m in models() {
        let parameters = match m.training {
            Training::Autograd => {
                // Only the shapes matter for a count: skip drawing random weights.
                let mut model =
                    shapes_only(|| build_for_input(m.name, m.input, m.default_classes, 0))?;
                Some(parameter_count(model.as_mut()))
            }
            Training::OwnRule => None,
        };
        let input = format!("{}x{}x{}", m.input[0], m.input[1], m.input[2]);
        if args.json {
            println!(
                "{}",
                json!({"model": m.name, "year": m.year, "paper": m.paper, "parameters": parameters,
                       "input": m.input, "classes": m.default_classes})
            );
        } else {
            let p = parameters.map_or("own rule".to_string(), group_digits);
            println!(
                "{:<14} {:>4}  {:>12}  {:<12} {}",
                m.name, m.year, p, input, m.paper
            );
        }
    }
    Ok(())
}

/// `1234567` as `1,234,567`.
fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Arguments of `ventral summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Model to describe.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// Input size per sample as CxHxW (default: the model's own).
    #[arg(long)]
    input: Option<String>,
    /// Output classes (default: the model's own).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Input channels of the stem, as `ventral train --in-channels` rebuilds it (default:
    /// the model's own).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    in_channels: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Describe the model a training run built, from its config.json: the model, input,
    /// channels and classes come from there (--model, --input, --num-classes and
    /// --in-channels are then not allowed).
    #[arg(long, conflicts_with_all = ["model", "input", "num_classes", "in_channels"])]
    config: Option<std::path::PathBuf>,
}

fn parse_input(s: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = s
        .split(['x', 'X', '×'])
        .map(|d| d.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--input `{s}`: expected CxHxW, e.g. 3x224x224"))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => bail!("--input `{s}`: expected three positive sizes CxHxW, e.g. 3x224x224"),
    }
}

/// Prints the per-layer table and totals of one model.
///
/// # Errors
/// Unknown model, bad input size, or an input the model does not accept.
pub fn describe(args: SummaryArgs) -> Result<()> {
    if let Some(path) = &args.config {
        let run = crate::train::RunModel::read(path)?;
        let input = run.options.input.unwrap_or([1, 28, 28]);
        let mut model = build_with(&run.model, &run.options, 0)?;
        return print_summary(&run.model, model.as_mut(), input, args.json);
    }
    let Some(info) = find(&args.model) else {
        let names: Vec<&str> = models().iter().map(|m| m.name).collect();
        bail!(
            "unknown model `{}`; valid models: {}",
            args.model,
            names.join(", ")
        );
    };
    let input = match &args.input {
        Some(s) => parse_input(s)?,
        None => info.input,
    };
    let classes = args.num_classes.unwrap_or(info.default_classes);
    if classes == 0 {
        bail!("--num-classes must be at least 1");
    }
    let mut options = ModelOptions::new(classes).input(input);
    if let Some(c) = args.in_channels {
        options = options.in_channels(c as usize);
    }
    let mut model = build_with(info.name, &options, 0)?;
    print_summary(info.name, model.as_mut(), input, args.json)
}

/// Prints the table of `model` (named `name`) for one sample of `input`.
fn print_summary(
    name: &str,
    model: &mut dyn ventral_nn::Module,
    input: [usize; 3],
    json: bool,
) -> Result<()> {
    let table = summary(model, &input)?;
    if json {
        let rows: Vec<_> = table
            .rows
            .iter()
            .map(|r| json!({"path": r.path, "layer": r.layer, "output": r.output, "parameters": r.parameters, "macs": r.macs}))
            .collect();
        println!(
            "{}",
            json!({"model": name, "input": table.input, "output": table.output, "parameters": table.parameters,
                   "macs": table.macs, "layers": rows})
        );
    } else {
        println!("{table}");
    }
    Ok(())
}
