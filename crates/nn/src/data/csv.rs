//! Comma-separated datasets: scikit-learn's digits and generic numeric "fields…, class" rows.
//!
//! Both accept a raw `.csv` or a gzip-compressed file (detected by its magic bytes). Lines are
//! separated by `\n` (a trailing `\r` is dropped), fields by `,`, and spaces around a field are
//! ignored. Blank lines are skipped. Line numbers in errors are one-based and count every
//! line of the file, as an editor shows them.

use std::collections::HashMap;
use std::path::Path;

use super::dataset::InMemoryDataset;
use super::error::{DataError, Result};
use super::input::Input;

/// The largest number of classes a CSV with integer class labels may have: a guard against a
/// stray huge number making every histogram and one-hot vector enormous.
pub const MAX_CSV_CLASSES: usize = 1 << 16;

/// Pixels per digits image (8×8).
const DIGITS_PIXELS: usize = 64;
/// The largest digits pixel value: each is a count of on-pixels in a 4×4 block.
const DIGITS_MAX_VALUE: u8 = 16;

/// Reads scikit-learn's `digits.csv(.gz)`: lines of 64 integers 0..=16 (an 8×8 image,
/// row-major) and a label 0..=9, no header. Samples are `[1, 8, 8]`, scaled to `[0, 1]` by
/// dividing by 16; class names are `"0"`…`"9"`.
///
/// # Errors
/// [`DataError::Csv`] naming the line for a row without 65 fields, a value that is not an
/// integer in 0..=16, or a label outside 0..=9; [`DataError::Csv`] too when there are no
/// rows; the I/O and gzip errors of any reader.
pub fn read_digits_csv(path: &Path) -> Result<InMemoryDataset> {
    let text = read_text(path)?;
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (line, fields) in rows(&text) {
        if fields.len() != DIGITS_PIXELS + 1 {
            return Err(csv_err(
                path,
                line,
                format!(
                    "expected {} fields (64 pixels and a label), found {}",
                    DIGITS_PIXELS + 1,
                    fields.len()
                ),
            ));
        }
        for (column, field) in fields[..DIGITS_PIXELS].iter().enumerate() {
            match field.parse::<u8>() {
                Ok(v) if v <= DIGITS_MAX_VALUE => data.push(v),
                _ => {
                    return Err(csv_err(
                        path,
                        line,
                        format!(
                            "field {}: {field:?} is not an integer in 0..=16",
                            column + 1
                        ),
                    ));
                }
            }
        }
        match fields[DIGITS_PIXELS].parse::<usize>() {
            Ok(label) if label < 10 => labels.push(label),
            _ => {
                return Err(csv_err(
                    path,
                    line,
                    format!("label {:?} is not a digit 0..=9", fields[DIGITS_PIXELS]),
                ));
            }
        }
    }
    if labels.is_empty() {
        return Err(csv_err(path, 1, "no data rows".to_string()));
    }
    let names = (0..10).map(|d| d.to_string()).collect();
    // Kept as bytes; read as `f32::from(v) / 16`, the expression applied up front before.
    InMemoryDataset::from_u8(
        [1, 8, 8],
        data,
        f32::from(DIGITS_MAX_VALUE),
        labels,
        10,
        Some(names),
    )
}

/// Reads a CSV of numeric rows `f1, f2, …, fF, class` into a dataset of `[F, 1, 1]` samples
/// (features as channels, so per-channel normalisation standardises each feature). Feature
/// values are kept as written, not rescaled.
///
/// - **Header**: optional. The first non-blank line is a header when one of its feature
///   fields (all but the last) does not parse as a number; it is then skipped.
/// - **Classes**: when every class field is a non-negative integer, it is the label itself
///   (`num_classes` = largest + 1, at most [`MAX_CSV_CLASSES`]) and there are no class names.
///   Otherwise every class field is a name (so `1` and `one` are two names), mapped to
///   indices in order of first appearance, and those names become the class names:
///   `setosa, versicolor, setosa, virginica` gives labels 0, 1, 0, 2.
///
/// # Errors
/// [`DataError::Csv`] naming the line for a row whose field count differs from the first
/// row's (ragged rows), fewer than two fields, a feature that is not a finite number, an
/// empty class, an integer class ≥ [`MAX_CSV_CLASSES`], or a file with no data rows; the
/// I/O and gzip errors of any reader.
pub fn read_csv(path: &Path) -> Result<InMemoryDataset> {
    let text = read_text(path)?;
    let mut rows = rows(&text).peekable();
    let Some((first_line, first)) = rows.peek().cloned() else {
        return Err(csv_err(path, 1, "no data rows".to_string()));
    };
    let width = first.len();
    if width < 2 {
        return Err(csv_err(
            path,
            first_line,
            format!("expected at least 2 fields (features, then a class), found {width}"),
        ));
    }
    let features = width - 1;
    let has_header = first[..features].iter().any(|f| f.parse::<f32>().is_err());
    if has_header {
        rows.next();
    }
    let mut data = Vec::new();
    let mut classes: Vec<(usize, &str)> = Vec::new();
    for (line, fields) in rows {
        if fields.len() != width {
            return Err(csv_err(
                path,
                line,
                format!(
                    "expected {width} fields (as on line {first_line}), found {}",
                    fields.len()
                ),
            ));
        }
        for (column, field) in fields[..features].iter().enumerate() {
            match field.parse::<f32>() {
                Ok(v) if v.is_finite() => data.push(v),
                _ => {
                    return Err(csv_err(
                        path,
                        line,
                        format!("field {}: {field:?} is not a finite number", column + 1),
                    ));
                }
            }
        }
        let class = fields[features];
        if class.is_empty() {
            return Err(csv_err(
                path,
                line,
                format!("field {width}: the class is empty"),
            ));
        }
        classes.push((line, class));
    }
    if classes.is_empty() {
        return Err(csv_err(path, first_line, "no data rows".to_string()));
    }
    let (labels, num_classes, names) = class_labels(path, &classes)?;
    InMemoryDataset::new([features, 1, 1], data, labels, num_classes, names)
}

/// Turns class fields into labels: integers as they are, or names by first appearance.
fn class_labels(
    path: &Path,
    classes: &[(usize, &str)],
) -> Result<(Vec<usize>, usize, Option<Vec<String>>)> {
    let integers: Option<Vec<usize>> = classes
        .iter()
        .map(|(_, c)| c.parse::<usize>().ok())
        .collect();
    if let Some(labels) = integers {
        if let Some(((line, class), _)) = classes
            .iter()
            .zip(&labels)
            .find(|(_, l)| **l >= MAX_CSV_CLASSES)
        {
            return Err(csv_err(
                path,
                *line,
                format!(
                    "class {class} is out of range: integer classes must be below {MAX_CSV_CLASSES}"
                ),
            ));
        }
        let num_classes = labels.iter().max().map_or(0, |m| m + 1);
        return Ok((labels, num_classes, None));
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut names = Vec::new();
    let labels = classes
        .iter()
        .map(|&(_, class)| {
            *index.entry(class).or_insert_with(|| {
                names.push(class.to_string());
                names.len() - 1
            })
        })
        .collect();
    Ok((labels, names.len(), Some(names)))
}

/// Reads the whole file as UTF-8 text, bounded by the input's limits.
fn read_text(path: &Path) -> Result<String> {
    let bytes = Input::open(path)?.read_rest()?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        csv_err(path, line, "not valid UTF-8 text".to_string())
    })
}

/// The non-blank lines of `text`, each with its one-based line number and trimmed fields.
fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.split('\n').enumerate().filter_map(|(i, line)| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        (!line.trim().is_empty()).then(|| (i + 1, line.split(',').map(str::trim).collect()))
    })
}

fn csv_err(path: &Path, line: usize, what: String) -> DataError {
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        what,
    }
}
