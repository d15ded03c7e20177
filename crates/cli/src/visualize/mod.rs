//! `ventral visualize`: pictures of what a network learned — first-layer filters and
//! activation maps (`filters`), and decision boundaries during training (`boundary`).

mod boundary;
mod filters;

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use plotters::style::FontStyle;
use ventral_nn::checkpoint::write_atomically;

pub use boundary::BoundaryArgs;
pub use filters::FiltersArgs;

/// Arguments of `ventral visualize`.
#[derive(Debug, Args)]
pub struct VisualizeArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// First-layer filters as a tiled image (Zeiler & Fergus), and with --image the
    /// activation maps of a convolution.
    Filters(FiltersArgs),
    /// Decision regions of a 2-feature classifier at several moments of its training.
    Boundary(BoundaryArgs),
}

/// The filters `weight` (`[O, C, KH, KW]`) as the RGB PNG `ventral visualize filters` draws:
/// its width, height and bytes (TensorBoard's image summary of `ventral train`).
///
/// # Errors
/// A tensor that is not 4-D; a failed encoding.
pub fn filters_png(weight: &ventral_nn::Tensor) -> Result<(usize, usize, Vec<u8>)> {
    if weight.dims().len() != 4 {
        bail!("filters must be [O, C, KH, KW], got {:?}", weight.dims());
    }
    let (_, canvas) = filters::draw_filters(weight)?;
    Ok((canvas.width, canvas.height, canvas.png_bytes()?))
}

/// Runs `ventral visualize …`.
///
/// # Errors
/// Bad arguments, unreadable inputs, an unwritable output.
pub fn run(args: VisualizeArgs) -> Result<()> {
    match args.what {
        What::Filters(a) => filters::run(a),
        What::Boundary(a) => boundary::run(a),
    }
}

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`), the font the
/// report plots use, so captions render on a machine with no fonts installed.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // A valid TrueType font compiled into the binary; registration cannot fail.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Fails unless `path` ends in `.ext` (case-insensitive), before any slow work.
fn check_extension(path: &Path, ext: &str) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case(ext) => Ok(()),
        _ => bail!("--out {}: the file name must end in .{ext}", path.display()),
    }
}

/// An 8-bit RGB picture being composed.
#[derive(Debug, Clone)]
struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, fill: [u8; 3]) -> Self {
        Self {
            width,
            height,
            rgb: fill.repeat(width * height),
        }
    }

    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        let i = 3 * (y * self.width + x);
        self.rgb[i..i + 3].copy_from_slice(&c);
    }

    /// The canvas encoded as an RGB PNG.
    fn png_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header()?;
            writer.write_image_data(&self.rgb)?;
        }
        Ok(bytes)
    }

    /// Writes the canvas as an RGB PNG, atomically.
    fn save_png(&self, path: &Path) -> Result<()> {
        let bytes = self.png_bytes()?;
        write_atomically(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Tiles of `tile_w × tile_h` pixels (before scaling) in a grid: `cols` columns, each tile
/// magnified `scale` times, 1-pixel separators between and around the tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grid {
    count: usize,
    cols: usize,
    tile_w: usize,
    tile_h: usize,
    scale: usize,
}

/// Separator colour between tiles.
const SEPARATOR: [u8; 3] = [64, 64, 64];

impl Grid {
    /// A near-square grid for `count` tiles, magnified so a tile's longer side is at least
    /// `min_side` pixels.
    fn new(count: usize, tile_w: usize, tile_h: usize, min_side: usize) -> Self {
        let cols = (count as f64).sqrt().ceil().max(1.0) as usize;
        let scale = min_side.div_ceil(tile_w.max(tile_h).max(1)).max(1);
        Self {
            count,
            cols,
            tile_w,
            tile_h,
            scale,
        }
    }

    fn rows(&self) -> usize {
        self.count.div_ceil(self.cols)
    }

    /// Image width: `cols` magnified tiles and `cols + 1` separators.
    fn width(&self) -> usize {
        self.cols * self.tile_w * self.scale + self.cols + 1
    }

    fn height(&self) -> usize {
        self.rows() * self.tile_h * self.scale + self.rows() + 1
    }

    /// Draws tile `index` from `pixel(x, y)` (tile coordinates), nearest-neighbour upscaled.
    fn draw(&self, canvas: &mut Canvas, index: usize, pixel: impl Fn(usize, usize) -> [u8; 3]) {
        let (row, col) = (index / self.cols, index % self.cols);
        let x0 = 1 + col * (self.tile_w * self.scale + 1);
        let y0 = 1 + row * (self.tile_h * self.scale + 1);
        for y in 0..self.tile_h * self.scale {
            for x in 0..self.tile_w * self.scale {
                canvas.set(x0 + x, y0 + y, pixel(x / self.scale, y / self.scale));
            }
        }
    }

    fn canvas(&self) -> Canvas {
        Canvas::new(self.width(), self.height(), SEPARATOR)
    }
}

/// Maps `values` linearly onto `[0, 1]` (a constant slice becomes mid-grey).
fn normalise(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return vec![0.5; values.len()];
    }
    values.iter().map(|v| (v - lo) / span).collect()
}

fn byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_arithmetic_counts_tiles_and_separators() {
        // LeNet-5's six 5x5 filters: 3 columns, 2 rows, 5 × 8 = 40 px tiles.
        let g = Grid::new(6, 5, 5, 40);
        assert_eq!((g.cols, g.rows(), g.scale), (3, 2, 8));
        assert_eq!((g.width(), g.height()), (3 * 40 + 4, 2 * 40 + 3));
        let g = Grid::new(64, 11, 11, 40);
        assert_eq!((g.cols, g.rows(), g.scale), (8, 8, 4));
    }

    #[test]
    fn normalise_spans_zero_to_one() {
        assert_eq!(normalise(&[-2.0, 0.0, 2.0]), vec![0.0, 0.5, 1.0]);
        assert_eq!(normalise(&[3.0, 3.0]), vec![0.5, 0.5]);
    }
}
