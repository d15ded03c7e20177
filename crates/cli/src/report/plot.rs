//! Line charts as PNG files, drawn with plotters and an embedded font (DejaVu Sans), so plots
//! render the same on a machine with no fonts installed.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary; registration can only
        // fail if they were not.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One named curve of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// Axis titles and the chart title.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// Above the plot.
    pub title: &'a str,
    /// Under the x axis.
    pub x: &'a str,
    /// Beside the y axis.
    pub y: &'a str,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws `series` as lines (with markers when a series has few points) into a PNG at `path`,
/// written to a temporary file first and renamed, so a reader never sees half a picture.
///
/// # Errors
/// If the file cannot be written.
pub fn line_chart(path: &Path, labels: Labels<'_>, series: &[Series]) -> Result<()> {
    register_font();
    // The encoder picks the format from the extension, so the temporary name ends in .png.
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{stem}.tmp.png"));
    draw(&tmp, labels, series).with_context(|| format!("could not draw {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

/// Draws a confusion matrix (`counts[true][predicted]`) as a PNG heat map: each cell shaded by
/// its share of the true class's samples and labelled with its count; axes labelled with
/// `names`. Written through a temporary file like [`line_chart`].
///
/// # Errors
/// If the file cannot be written.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    names: &[String],
    counts: &[Vec<u64>],
) -> Result<()> {
    register_font();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{stem}.tmp.png"));
    draw_confusion(&tmp, title, names, counts)
        .with_context(|| format!("could not draw {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

fn draw_confusion(path: &Path, title: &str, names: &[String], counts: &[Vec<u64>]) -> Result<()> {
    let k = counts.len();
    let cell = (560 / k.max(1)).clamp(12, 64) as u32;
    let side = cell * k as u32;
    let root = BitMapBackend::new(path, (side + 160, side + 150)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(title.to_string(), (20, 12), ("sans-serif", 22)))?;
    let (x0, y0) = (130i32, 80i32);
    let label = ("sans-serif", 14);
    root.draw(&Text::new("predicted →", (x0, y0 - 40), label))?;
    root.draw(&Text::new("true ↓", (20, y0 - 40), label))?;
    for (t, row) in counts.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        for (p, &n) in row.iter().enumerate() {
            let share = n as f64 / total;
            // White for none, deep blue for all of the class.
            let shade = |full: f64| (255.0 - share * (255.0 - full)) as u8;
            let color = RGBColor(shade(31.0), shade(80.0), shade(180.0));
            let (x, y) = (x0 + (p as u32 * cell) as i32, y0 + (t as u32 * cell) as i32);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32, y + cell as i32)],
                color.filled(),
            ))?;
            if cell >= 28 && n > 0 {
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let text = n.to_string();
                let style = ("sans-serif", 12).into_font().color(&ink);
                root.draw(&Text::new(text, (x + 3, y + cell as i32 / 2 - 6), style))?;
            }
        }
    }
    for (i, name) in names.iter().enumerate().take(k) {
        let offset = (i as u32 * cell + cell / 2) as i32;
        root.draw(&Text::new(name.clone(), (x0 + offset - 4, y0 - 20), label))?;
        root.draw(&Text::new(name.clone(), (x0 - 60, y0 + offset - 7), label))?;
    }
    root.present()?;
    Ok(())
}

fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let points = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let pad = |lo: f64, hi: f64| {
        let span = (hi - lo).max(1e-9);
        (lo - 0.05 * span, hi + 0.05 * span)
    };
    (pad(x0, x1), pad(y0, y1))
}

fn draw(path: &Path, labels: Labels<'_>, series: &[Series]) -> Result<()> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let ((x0, x1), (y0, y1)) = bounds(series);
    let mut chart = ChartBuilder::on(&root)
        .caption(labels.title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        if points.len() <= 60 {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_with_both_curves() {
        let dir = std::env::temp_dir().join(format!("ventral-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loss.png");
        let train = Series {
            name: "train".into(),
            points: (0..50)
                .map(|i| (i as f64, 2.3 * (-0.1 * i as f64).exp()))
                .collect(),
        };
        let test = Series {
            name: "test".into(),
            points: (0..10)
                .map(|i| (5.0 * i as f64, 2.0 * (-0.08 * 5.0 * i as f64).exp() + 0.1))
                .collect(),
        };
        let labels = Labels {
            title: "Loss",
            x: "epoch",
            y: "cross-entropy",
        };
        line_chart(&path, labels, &[train, test]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // PNG signature, and a real picture rather than an empty canvas.
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 10_000, "only {} bytes", bytes.len());
        if let Ok(keep) = std::env::var("VENTRAL_KEEP_PLOT") {
            std::fs::copy(&path, keep).unwrap();
        }
    }
}
