//! `ventral visualize filters`: the first convolution's filters as a tiled image, as Zeiler &
//! Fergus show them, and with `--image` the activation maps of that convolution.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;
use ventral_models::{capture_output, find, summary};
use ventral_nn::{Conv2dParams, Module, Slot, Tensor, no_grad};

use super::{Grid, byte, check_extension, normalise};
use crate::infer::load_model;
use crate::train::check_model_name;

// The image helpers of `ventral predict`: reading PNG/PGM/PPM, grey/RGB planes, bilinear resize.
use crate::infer::image;

/// A filter tile's longer side is magnified to at least this many pixels.
const FILTER_MIN_SIDE: usize = 40;
/// An activation map's longer side is magnified to at least this many pixels.
const MAP_MIN_SIDE: usize = 56;

/// Arguments of `ventral visualize filters`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Filters: each output filter of the first convolution (the first rank-4 parameter named
`…weight`) is scaled to [0, 1] on its own (min to black, max to white), shown in colour when it
has 3 input channels and in grey when it has 1 (the mean over its channels otherwise), and
magnified with nearest-neighbour sampling; tiles sit in a near-square grid with 1-pixel
separators.

Activation maps (--image): the image is converted to the model's channels and input size as
`ventral predict` does (grey images that are mostly light at the border are inverted, to match
MNIST), normalised with the run's config.json beside --weights when there is one, and run
through the first convolution, or the whole model when --layer names a deeper layer (its
output is captured as the model runs); each output map is scaled to [0, 1] on its own and
tiled in grey.")]
pub struct FiltersArgs {
    /// Model architecture the weights belong to.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// A state dict: safetensors (e.g. `runs/latest/best.safetensors`) or PyTorch `.pth`.
    #[arg(long)]
    weights: PathBuf,
    /// Where to write the filters (PNG).
    #[arg(long)]
    out: PathBuf,
    /// A PNG or binary PGM/PPM image: also write the activation maps of --layer.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The layer whose output maps to show, by its path in `ventral summary` (`conv2`,
    /// `layer1.0.conv1`); default: the first convolution. Needs --image.
    #[arg(long, requires = "image")]
    layer: Option<String>,
    /// Where to write the activation maps (default: beside --out, `NAME-activations.png`).
    #[arg(long, requires = "image")]
    activations_out: Option<PathBuf>,
}

/// A rank-4 (convolution) weight, `[O, C, KH, KW]`, and its layer's bias.
struct Conv {
    path: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Every convolution of `model` in state-dict order: the parameters named `…weight` of rank 4.
fn convolutions(model: &mut dyn Module) -> Vec<Conv> {
    let mut params: Vec<(String, Tensor)> = Vec::new();
    model.visit("", &mut |name, slot| {
        if let Slot::Parameter(t) = slot {
            params.push((name.to_string(), t.clone()));
        }
    });
    params
        .iter()
        .filter(|(name, t)| name.ends_with("weight") && t.rank() == 4)
        .map(|(name, weight)| {
            let path = name
                .strip_suffix("weight")
                .unwrap_or(name)
                .trim_end_matches('.')
                .to_string();
            let bias_name = if path.is_empty() {
                "bias".to_string()
            } else {
                format!("{path}.bias")
            };
            Conv {
                bias: params
                    .iter()
                    .find(|(n, _)| *n == bias_name)
                    .map(|(_, t)| t.clone()),
                path,
                weight: weight.clone(),
            }
        })
        .collect()
}

/// Runs `ventral visualize filters`.
///
/// # Errors
/// An unknown model, unreadable weights or image, a model without convolutions, an
/// unwritable output.
pub fn run(args: FiltersArgs) -> Result<()> {
    check_model_name(&args.model)?;
    check_extension(&args.out, "png")?;
    let activations_out = args.image.as_ref().map(|_| {
        args.activations_out.clone().unwrap_or_else(|| {
            let stem = args
                .out
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            args.out.with_file_name(format!("{stem}-activations.png"))
        })
    });
    if let Some(path) = &activations_out {
        check_extension(path, "png")?;
    }
    let config = read_config(&args.weights);
    let input = config
        .as_ref()
        .and_then(|c| c.input)
        .or_else(|| find(&args.model).map(|m| m.input))
        .unwrap_or([1, 28, 28]);
    let (mut model, _) = load_model(&args.model, &args.weights, input, None)?;
    let convs = convolutions(model.as_mut());
    let Some(first) = convs.first() else {
        bail!(
            "model {} has no convolution (no rank-4 `weight` parameter) to show",
            args.model
        );
    };
    let (grid, canvas) = draw_filters(&first.weight)?;
    canvas.save_png(&args.out)?;
    let d = first.weight.dims();
    println!(
        "{}: {} filters of `{}.weight` ({}x{}x{}), {}x{} tiles magnified {}x -> {}x{} px",
        args.out.display(),
        d[0],
        first.path,
        d[1],
        d[2],
        d[3],
        grid.cols,
        grid.rows(),
        grid.scale,
        grid.width(),
        grid.height()
    );

    let (Some(image_path), Some(out)) = (&args.image, activations_out) else {
        return Ok(());
    };
    let x = prepare_image(image_path, input, config.as_ref())?;
    // The first convolution runs directly on the image; any other layer is captured from a
    // forward pass of the whole model.
    let (maps, path) = match args
        .layer
        .as_deref()
        .map(|l| l.strip_suffix(".weight").unwrap_or(l))
    {
        Some(layer) if layer != first.path => {
            let maps = capture_output(model.as_mut(), &x, layer)
                .with_context(|| format!("running {} on {}", args.model, image_path.display()))?
                .ok_or_else(|| {
                    anyhow!(
                        "--layer {layer}: no layer of {} has that name; its convolutions: {}",
                        args.model,
                        convs
                            .iter()
                            .map(|c| c.path.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if maps.rank() != 4 {
                bail!(
                    "--layer {layer}: its output {:?} is not a stack of 2-D maps [N, C, H, W]",
                    maps.dims()
                );
            }
            (maps, layer.to_string())
        }
        _ => {
            let params = conv_params(model.as_mut(), input, &first.path)?;
            let maps = no_grad(|| x.conv2d(&first.weight, first.bias.as_ref(), params))
                .with_context(|| format!("running `{}` on {}", first.path, image_path.display()))?;
            (maps, first.path.clone())
        }
    };
    let (grid, canvas) = draw_maps(&maps)?;
    canvas.save_png(&out)?;
    let m = maps.dims();
    println!(
        "{}: {} activation maps of `{}` ({}x{}), {}x{} tiles magnified {}x -> {}x{} px",
        out.display(),
        m[1],
        path,
        m[2],
        m[3],
        grid.cols,
        grid.rows(),
        grid.scale,
        grid.width(),
        grid.height()
    );
    Ok(())
}

/// What a run's config.json says about its input.
struct RunConfig {
    input: Option<[usize; 3]>,
    mean: Vec<f32>,
    std: Vec<f32>,
}

/// The config.json beside `weights`, if there is a readable one.
fn read_config(weights: &Path) -> Option<RunConfig> {
    let path = weights.with_file_name("config.json");
    let config: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let floats = |v: &Value| -> Option<Vec<f32>> {
        v.as_array()?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect()
    };
    let shape: Option<Vec<usize>> = config["input_shape"]
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|v| v as usize)).collect());
    Some(RunConfig {
        input: match shape.as_deref() {
            Some(&[c, h, w]) => Some([c, h, w]),
            _ => None,
        },
        mean: floats(&config["normalize"]["mean"]).unwrap_or_default(),
        std: floats(&config["normalize"]["std"]).unwrap_or_default(),
    })
}

/// The convolution settings of layer `path`, read from its description in the model's
/// summary (`Conv2d(3→64, 11x11, stride (4, 4), padding (2, 2))`).
fn conv_params(model: &mut dyn Module, input: [usize; 3], path: &str) -> Result<Conv2dParams> {
    let table = summary(model, &input)?;
    let Some(row) = table.rows.iter().find(|r| r.path == path) else {
        bail!("layer `{path}` did not run in a forward pass of the model");
    };
    let pair = |key: &str| -> Option<(usize, usize)> {
        let rest = &row.layer[row.layer.find(&format!("{key} ("))? + key.len() + 2..];
        let (a, rest) = rest.split_once(',')?;
        let (b, _) = rest.split_once(')')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    };
    let mut params = Conv2dParams::default();
    if let Some(s) = pair("stride") {
        params.stride = s;
    }
    if let Some(p) = pair("padding") {
        params.padding = p;
    }
    if let Some(d) = pair("dilation") {
        params.dilation = d;
    }
    if let Some(g) = row.layer.split("groups ").nth(1) {
        params.groups = g.trim_end_matches(')').trim().parse().unwrap_or(1);
    }
    Ok(params)
}

/// The image as a `[1, C, H, W]` model input: planes, inverted if it is a light-background
/// grey picture, normalised with the run's statistics when known.
fn prepare_image(path: &Path, input: [usize; 3], config: Option<&RunConfig>) -> Result<Tensor> {
    let [c, h, w] = input;
    let img = image::read(path)?;
    let mut planes = image::to_planes(&img, c, h, w);
    if c == 1 {
        // A grey picture with a mostly light border is dark-on-light: invert to match MNIST.
        let border: Vec<f32> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (y, x)))
            .filter(|&(y, x)| y == 0 || x == 0 || y == h - 1 || x == w - 1)
            .map(|(y, x)| planes[y * w + x])
            .collect();
        if border.iter().sum::<f32>() > 0.5 * border.len() as f32 {
            planes.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
    }
    if let Some(cfg) = config
        && cfg.mean.len() == c
        && cfg.std.len() == c
    {
        for (k, plane) in planes.chunks_exact_mut(h * w).enumerate() {
            let s = if cfg.std[k] > 0.0 { cfg.std[k] } else { 1.0 };
            plane.iter_mut().for_each(|v| *v = (*v - cfg.mean[k]) / s);
        }
    }
    Ok(Tensor::from_vec(planes, [1, c, h, w])?)
}

/// The filters `[O, C, KH, KW]` as a grid of tiles.
pub(super) fn draw_filters(weight: &Tensor) -> Result<(Grid, super::Canvas)> {
    let d = weight.dims().to_vec();
    let (o, c, kh, kw) = (d[0], d[1], d[2], d[3]);
    let values = weight.to_vec();
    let grid = Grid::new(o, kw, kh, FILTER_MIN_SIDE);
    let mut canvas = grid.canvas();
    let per = c * kh * kw;
    for (f, filter) in values.chunks_exact(per).enumerate() {
        let rgb = c == 3;
        let shown: Vec<f32> = if rgb || c == 1 {
            filter.to_vec()
        } else {
            // Neither grey nor RGB: the mean over input channels.
            (0..kh * kw)
                .map(|i| (0..c).map(|ch| filter[ch * kh * kw + i]).sum::<f32>() / c as f32)
                .collect()
        };
        let v = normalise(&shown);
        let plane = kh * kw;
        grid.draw(&mut canvas, f, |x, y| {
            let i = y * kw + x;
            if rgb {
                [byte(v[i]), byte(v[plane + i]), byte(v[2 * plane + i])]
            } else {
                [byte(v[i]); 3]
            }
        });
    }
    Ok((grid, canvas))
}

/// Activation maps `[1, O, H, W]` as a grid of grey tiles.
fn draw_maps(maps: &Tensor) -> Result<(Grid, super::Canvas)> {
    let d = maps.dims().to_vec();
    let (o, h, w) = (d[1], d[2], d[3]);
    let values = maps.to_vec();
    let grid = Grid::new(o, w, h, MAP_MIN_SIDE);
    let mut canvas = grid.canvas();
    for (m, map) in values.chunks_exact(h * w).enumerate() {
        let v = normalise(map);
        grid.draw(&mut canvas, m, |x, y| [byte(v[y * w + x]); 3]);
    }
    Ok((grid, canvas))
}
