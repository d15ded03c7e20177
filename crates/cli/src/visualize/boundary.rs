//! `ventral visualize boundary`: the lecture's "decision boundary perspective" — train a
//! classifier on a 2-feature dataset and draw its decision regions over the data points at
//! several moments of training, as a strip of frames or an animated GIF.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use ventral_models::build_for_input;
use ventral_models::classic::{Adaline, Perceptron};
use ventral_nn::data::{Dataset, Split};
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::rng::{Purpose, SplitMix64};
use ventral_nn::{Tensor, no_grad};
use ventral_train::{StepData, TrainError, Trainer, argmax_rows};

use super::{check_extension, register_font};
use crate::data_dir::load_named;

/// The classifiers `--model` accepts.
const MODELS: [&str; 3] = ["perceptron", "adaline", "mlp"];
/// One frame's size in pixels.
pub const FRAME_WIDTH: u32 = 360;
/// One frame's height in pixels (the caption included).
pub const FRAME_HEIGHT: u32 = 400;
/// Grid cells per side of the coloured background.
const CELLS: usize = 120;
/// Mini-batch size of the MLP's SGD.
const MLP_BATCH: usize = 32;
/// Delay between GIF frames, in milliseconds.
const GIF_DELAY_MS: u32 = 900;

/// Arguments of `ventral visualize boundary`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Training: features are standardised (zero mean, unit variance; the picture keeps the original
axes). `perceptron` and `adaline` are binary (classes 0 and 1) and learn by their own rules,
one online pass over the samples (in a fixed shuffled order) per epoch: Rosenblatt's rule
(defaults: 20 epochs, lr 1) and Widrow-Hoff's delta rule on ±1 targets (30 epochs, lr 0.01).
`mlp` is the zoo's 2→100→K ReLU network trained by autograd: cross-entropy, SGD with momentum
0.9, mini-batches of 32 (100 epochs, lr 0.02).

Frames: K moments of training — before it (epoch 0), then along the run, ending with the
last epoch; the default 4 are after 0 %, 10 %, 50 % and 100 % of the epochs. Each frame shows
the predicted class over a grid as a pale background, the samples coloured by their label,
and a caption with the epoch and the training accuracy.

Example data: data/examples/blobs.csv (linearly separable) and data/examples/two_moons.csv.")]
pub struct BoundaryArgs {
    /// `csv:PATH` (features then a class per row; exactly 2 features) or a named dataset.
    #[arg(long)]
    dataset: String,
    /// Directory holding the dataset's files (default: the repository's `data/<dataset>`,
    /// or `.` for `csv:PATH`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// perceptron, adaline or mlp.
    #[arg(long)]
    model: String,
    /// Passes over the data (default: 20 perceptron, 30 adaline, 100 mlp).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    epochs: Option<u32>,
    /// Step size (default: 1 perceptron, 0.01 adaline, 0.02 mlp).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Moments of training to draw.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    frames: u32,
    /// Write an animated GIF (one frame per moment) instead of a PNG strip.
    #[arg(long)]
    gif: bool,
    /// Seed of the sample order and of the MLP's initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file: a PNG (a horizontal strip of frames), or a GIF with --gif.
    #[arg(long)]
    out: PathBuf,
}

/// A classifier being trained on standardised 2-feature rows.
enum Learner {
    Perceptron(Perceptron),
    Adaline(Adaline),
    Mlp(Box<Trainer>),
}

impl Learner {
    fn new(name: &str, lr: f32, classes: usize, seed: u64) -> Result<Self> {
        Ok(match name {
            "perceptron" => Self::Perceptron(Perceptron::new(2, lr)?),
            "adaline" => Self::Adaline(Adaline::new(2, lr)?),
            _ => {
                let classes = classes.max(2);
                let mut config = SgdConfig::new(lr);
                config.momentum = 0.9;
                let model = build_for_input("mlp", [2, 1, 1], classes, seed)?;
                Self::Mlp(Box::new(Trainer::new(
                    model,
                    Box::new(Sgd::new(config)?),
                    classes,
                )))
            }
        })
    }

    /// One pass over `xs` (rows of 2) in the order given.
    fn epoch(&mut self, xs: &[f32], labels: &[usize], epoch_seed: u64) -> Result<()> {
        match self {
            Self::Perceptron(p) => {
                let targets: Vec<u8> = labels.iter().map(|&l| u8::from(l == 1)).collect();
                p.epoch(xs, &targets)?;
            }
            Self::Adaline(a) => {
                let targets: Vec<f32> = labels
                    .iter()
                    .map(|&l| if l == 1 { 1.0 } else { -1.0 })
                    .collect();
                a.epoch(xs, &targets)?;
            }
            Self::Mlp(trainer) => {
                let order = shuffled(labels.len(), epoch_seed);
                for chunk in order.chunks(MLP_BATCH) {
                    let x: Vec<f32> = chunk
                        .iter()
                        .flat_map(|&i| [xs[2 * i], xs[2 * i + 1]])
                        .collect();
                    let y: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
                    let x = Tensor::from_vec(x, [chunk.len(), 2])?;
                    match trainer.step(StepData::new(&x, &y)) {
                        Err(TrainError::NonFiniteLoss { value, .. }) => {
                            bail!("the MLP's loss became {value}; try a smaller --lr")
                        }
                        other => other?,
                    };
                }
            }
        }
        Ok(())
    }

    /// The predicted class of each row of `xs`.
    fn predict(&mut self, xs: &[f32]) -> Result<Vec<usize>> {
        Ok(match self {
            Self::Perceptron(p) => xs
                .chunks_exact(2)
                .map(|x| usize::from(p.predict(x)))
                .collect(),
            Self::Adaline(a) => xs
                .chunks_exact(2)
                .map(|x| usize::from(a.predict(x) > 0.0))
                .collect(),
            Self::Mlp(trainer) => {
                let n = xs.len() / 2;
                let x = Tensor::from_slice(xs, [n, 2])?;
                // The MLP has neither dropout nor batch norm: its training mode is its
                // eval mode, so no mode switch is needed.
                let scores = no_grad(|| trainer.model().forward(&x))?;
                argmax_rows(&scores.to_vec(), scores.dims()[1])
            }
        })
    }
}

/// A permutation of `0..n` from `seed` (the shuffle stream of [`ventral_nn::rng`], the seed
/// offset so the demo's orders differ from the classic learners' of the same seed).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    SplitMix64::stream(seed ^ 0x5EED_B0DA_2D5E_ED00, Purpose::Shuffle, &[]).permutation(n)
}

/// The epochs at which to draw `frames` frames of an `epochs`-epoch run: the fraction of
/// training follows the piecewise-linear curve through (0, 0), (⅓, 0.1), (⅔, 0.5), (1, 1),
/// so 4 frames fall after 0 %, 10 %, 50 % and 100 % of the epochs; one frame is the end.
pub fn moments(frames: usize, epochs: usize) -> Vec<usize> {
    const CURVE: [(f64, f64); 4] = [(0.0, 0.0), (1.0 / 3.0, 0.1), (2.0 / 3.0, 0.5), (1.0, 1.0)];
    if frames <= 1 {
        return vec![epochs];
    }
    (0..frames)
        .map(|i| {
            let t = i as f64 / (frames - 1) as f64;
            let k = CURVE
                .windows(2)
                .position(|w| t <= w[1].0)
                .unwrap_or(CURVE.len() - 2);
            let ((t0, f0), (t1, f1)) = (CURVE[k], CURVE[k + 1]);
            let f = f0 + (f1 - f0) * (t - t0) / (t1 - t0);
            ((f * epochs as f64).round() as usize).min(epochs)
        })
        .collect()
}

/// One moment of training.
struct Frame {
    epoch: usize,
    accuracy: f64,
    /// Predicted class per background cell, row-major from the top-left.
    cells: Vec<usize>,
}

/// Colours per class (matplotlib's tab10, the report plots' palette).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn class_color(c: usize) -> RGBColor {
    PALETTE[c % PALETTE.len()]
}

/// The class colour mixed with white: the region tint.
fn tint(c: usize) -> RGBColor {
    let RGBColor(r, g, b) = class_color(c);
    let mix = |v: u8| (f32::from(v) * 0.3 + 255.0 * 0.7).round() as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

/// Runs `ventral visualize boundary`.
///
/// # Errors
/// An unknown model or dataset, data without exactly 2 features, more than 2 classes for a
/// binary classifier, a bad number, an unwritable output.
pub fn run(args: BoundaryArgs) -> Result<()> {
    let model = args.model.as_str();
    if !MODELS.contains(&model) {
        bail!(
            "unknown model `{model}` for a decision boundary; valid models: {}",
            MODELS.join(", ")
        );
    }
    check_extension(&args.out, if args.gif { "gif" } else { "png" })
        .map_err(|e| anyhow::anyhow!("{e}{}", if args.gif { " with --gif" } else { "" }))?;
    let (default_epochs, default_lr) = match model {
        "perceptron" => (20, 1.0),
        "adaline" => (30, 0.01),
        _ => (100, 0.02),
    };
    let epochs = args.epochs.map_or(default_epochs, |e| e as usize);
    let lr = args.lr.unwrap_or(default_lr);
    if !(lr > 0.0 && lr.is_finite()) {
        bail!("--lr {lr}: the step size must be a positive number");
    }

    let set = load_named(&args.dataset, args.data_dir.as_deref(), Split::Train)?;
    let [c, h, w] = set.sample_shape();
    if c * h * w != 2 {
        bail!(
            "{} has {} features per sample ({c}x{h}x{w}); a decision boundary needs exactly 2",
            args.dataset,
            c * h * w
        );
    }
    let classes = set.num_classes();
    if model != "mlp" && classes > 2 {
        bail!(
            "{model} is a binary classifier, but {} has {classes} classes (labels 0..{}); \
             use --model mlp",
            args.dataset,
            classes - 1
        );
    }
    let raw = set.to_f32();
    // Training order: shuffled once, so rows sorted by class do not bias the online rules.
    let order = shuffled(set.len(), args.seed);
    let labels: Vec<usize> = order.iter().map(|&i| set.labels()[i]).collect();
    let points: Vec<f32> = order
        .iter()
        .flat_map(|&i| [raw[2 * i], raw[2 * i + 1]])
        .collect();
    let n = labels.len() as f32;
    let mean = [0, 1].map(|k| points.iter().skip(k).step_by(2).sum::<f32>() / n);
    let std = [0, 1].map(|k| {
        let var = points
            .iter()
            .skip(k)
            .step_by(2)
            .map(|v| (v - mean[k]).powi(2))
            .sum::<f32>()
            / n;
        if var > 0.0 { var.sqrt() } else { 1.0 }
    });
    let standardise = |xs: &[f32]| -> Vec<f32> {
        xs.chunks_exact(2)
            .flat_map(|p| [(p[0] - mean[0]) / std[0], (p[1] - mean[1]) / std[1]])
            .collect()
    };
    let xs = standardise(&points);
    let bounds = padded_bounds(&points);
    // Background cell centres, row-major from the top-left, in data coordinates.
    let ((x0, x1), (y0, y1)) = bounds;
    let centres: Vec<f32> = (0..CELLS)
        .flat_map(|r| {
            (0..CELLS).flat_map(move |col| {
                let x = x0 + (x1 - x0) * (col as f64 + 0.5) / CELLS as f64;
                let y = y1 - (y1 - y0) * (r as f64 + 0.5) / CELLS as f64;
                [x as f32, y as f32]
            })
        })
        .collect();
    let grid = standardise(&centres);

    let wanted = moments(args.frames as usize, epochs);
    let mut learner = Learner::new(model, lr, classes, args.seed)?;
    let mut frames = Vec::with_capacity(wanted.len());
    for epoch in 0..=epochs {
        if epoch > 0 {
            learner.epoch(&xs, &labels, args.seed.wrapping_add(epoch as u64))?;
        }
        for _ in wanted.iter().filter(|&&e| e == epoch) {
            let predicted = learner.predict(&xs)?;
            let right = predicted
                .iter()
                .zip(&labels)
                .filter(|(p, l)| p == l)
                .count();
            frames.push(Frame {
                epoch,
                accuracy: 100.0 * right as f64 / labels.len() as f64,
                cells: learner.predict(&grid)?,
            });
        }
    }
    for f in &frames {
        println!(
            "epoch {:>w$}/{epochs}: training accuracy {:.1} %",
            f.epoch,
            f.accuracy,
            w = epochs.to_string().len()
        );
    }

    let samples: Vec<(f64, f64, usize)> = points
        .chunks_exact(2)
        .zip(&labels)
        .map(|(p, &l)| (f64::from(p[0]), f64::from(p[1]), l))
        .collect();
    let scene = Scene {
        model,
        epochs,
        bounds,
        samples: &samples,
    };
    register_font();
    write_via_temp(&args.out, |tmp| {
        if args.gif {
            let root = BitMapBackend::gif(tmp, (FRAME_WIDTH, FRAME_HEIGHT), GIF_DELAY_MS)?
                .into_drawing_area();
            for frame in &frames {
                scene.draw(&root, frame)?;
                root.present()?;
            }
        } else {
            let width = FRAME_WIDTH * frames.len() as u32;
            let root = BitMapBackend::new(tmp, (width, FRAME_HEIGHT)).into_drawing_area();
            let areas = root.split_evenly((1, frames.len()));
            for (area, frame) in areas.iter().zip(&frames) {
                scene.draw(area, frame)?;
            }
            root.present()?;
        }
        Ok(())
    })?;
    println!(
        "{}: {} frame{} of {model} on {}",
        args.out.display(),
        frames.len(),
        if frames.len() == 1 { "" } else { "s" },
        args.dataset
    );
    Ok(())
}

/// The data's range on each axis, widened by 10 % of the span on each side.
fn padded_bounds(points: &[f32]) -> ((f64, f64), (f64, f64)) {
    let axis = |k: usize| {
        let (lo, hi) = points
            .iter()
            .skip(k)
            .step_by(2)
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| {
                (lo.min(f64::from(v)), hi.max(f64::from(v)))
            });
        let span = (hi - lo).max(1e-6);
        (lo - 0.1 * span, hi + 0.1 * span)
    };
    (axis(0), axis(1))
}

/// What every frame shares.
struct Scene<'a> {
    model: &'a str,
    epochs: usize,
    bounds: ((f64, f64), (f64, f64)),
    samples: &'a [(f64, f64, usize)],
}

impl Scene<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        frame: &Frame,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        area.fill(&WHITE)?;
        let ((x0, x1), (y0, y1)) = self.bounds;
        let caption = format!(
            "{} · epoch {}/{} · accuracy {:.1} %",
            self.model, frame.epoch, self.epochs, frame.accuracy
        );
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(26)
            .y_label_area_size(34)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(5)
            .label_style(("sans-serif", 11))
            .draw()?;
        let (dx, dy) = ((x1 - x0) / CELLS as f64, (y1 - y0) / CELLS as f64);
        chart.draw_series(frame.cells.iter().enumerate().map(|(i, &c)| {
            let (r, col) = ((i / CELLS) as f64, (i % CELLS) as f64);
            let left = x0 + col * dx;
            let top = y1 - r * dy;
            Rectangle::new([(left, top), (left + dx, top - dy)], tint(c).filled())
        }))?;
        chart.draw_series(
            self.samples
                .iter()
                .map(|&(x, y, l)| Circle::new((x, y), 4, class_color(l).filled())),
        )?;
        chart.draw_series(
            self.samples
                .iter()
                .map(|&(x, y, _)| Circle::new((x, y), 4, BLACK.stroke_width(1))),
        )?;
        Ok(())
    }
}

/// Draws into a temporary file beside `path` (same extension, since the encoder picks the
/// format from it), then renames it, so a reader never sees half a picture.
fn write_via_temp(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{stem}.tmp.{ext}"));
    if let Err(e) = draw(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        bail!("could not draw {}: {e}", path.display());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::moments;

    #[test]
    fn four_moments_fall_at_0_10_50_and_100_percent() {
        assert_eq!(moments(4, 100), vec![0, 10, 50, 100]);
        assert_eq!(moments(4, 20), vec![0, 2, 10, 20]);
        assert_eq!(moments(1, 7), vec![7]);
        assert_eq!(moments(2, 7), vec![0, 7]);
        let seven = moments(7, 300);
        assert_eq!((seven[0], seven[6]), (0, 300));
        assert!(seven.windows(2).all(|w| w[0] <= w[1]), "{seven:?}");
    }
}
