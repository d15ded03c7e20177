//! Comma-separated datasets: scikit-learn's digits and generic numeric "fields…, class" rows.
//!
//! Both accept a raw `.csv` or a gzip-compressed file (detected by its magic bytes). Lines are
//! separated by `\n` (a trailing `\r` is dropped), fields by `,`, and spaces around a field are
//! ignored. Blank lines are skipped. Line numbers in errors are one-based and count every
//! line of the file, as an editor shows them.
//!
//! Files are read line by line, never whole: memory holds the parsed values (4 bytes per
//! feature, 8 per row for the label; about 3 bytes per byte of text at most, twice that
//! while the vectors grow) and one line, all within
//! [`Limits::decompressed_bytes`](crate::limits::Limits::decompressed_bytes) of text. The
//! number of classes is bounded by [`Limits::classes`](crate::limits::Limits::classes)
//! before any per-class structure exists.

use std::collections::HashMap;
use std::path::Path;

use super::dataset::InMemoryDataset;
use super::error::{DataError, Result};
use super::input::Input;
use crate::limits::Limits;

/// The default largest number of classes a CSV may have (integer labels or distinct names):
/// [`Limits::classes`]'s default, which `VENTRAL_MAX_CLASSES` changes. A guard against a
/// stray huge number making every histogram, one-hot vector and classifier enormous.
pub const MAX_CSV_CLASSES: usize = Limits::DEFAULT.classes;

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
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for_each_row(path, |line, fields| {
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
        Ok(())
    })?;
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
///   fields (all but the last) does not parse as a number; it is then skipped, and its
///   fields name the columns in messages.
/// - **Classes**: when every class field is a non-negative integer, it is the label itself
///   (`num_classes` = largest + 1, below [`Limits::classes`]) and there are no class names.
///   Otherwise every class field is a name (so `1` and `one` are two names), mapped to
///   indices in order of first appearance, and those names become the class names:
///   `setosa, versicolor, setosa, virginica` gives labels 0, 1, 0, 2.
///
/// # Errors
/// [`DataError::Csv`] naming the line for a row whose field count differs from the first
/// row's (ragged rows), fewer than two fields, a feature that is not a finite number, an
/// empty class, an integer class ≥ [`Limits::classes`], or a file with no data rows;
/// [`DataError::TooManyClasses`] for more distinct class names than [`Limits::classes`];
/// the I/O, gzip and size errors of any reader.
pub fn read_csv(path: &Path) -> Result<InMemoryDataset> {
    let limit = Limits::current()?.classes;
    let mut width = 0;
    let mut first_line = 1;
    let mut columns: Option<Vec<String>> = None;
    let mut data = Vec::new();
    // Each row's class as an index into `names` (distinct class fields, first appearance).
    let mut rows_class: Vec<usize> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    // The first integer class at or past the limit, reported if every class is an integer.
    let mut too_big: Option<(usize, String)> = None;
    for_each_row(path, |line, fields| {
        if width == 0 {
            width = fields.len();
            first_line = line;
            if width < 2 {
                return Err(csv_err(
                    path,
                    line,
                    format!("expected at least 2 fields (features, then a class), found {width}"),
                ));
            }
            if fields[..width - 1]
                .iter()
                .any(|f| f.parse::<f32>().is_err())
            {
                columns = Some(fields[..width - 1].iter().map(|f| f.to_string()).collect());
                return Ok(());
            }
        }
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
        let features = width - 1;
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
        let k = match index.get(class) {
            Some(&k) => k,
            None => {
                if names.len() >= limit {
                    return Err(DataError::TooManyClasses {
                        path: path.to_path_buf(),
                        classes: names.len() + 1,
                        limit,
                    });
                }
                if too_big.is_none() && class.parse::<usize>().is_ok_and(|c| c >= limit) {
                    too_big = Some((line, class.to_string()));
                }
                index.insert(class.to_string(), names.len());
                names.push(class.to_string());
                names.len() - 1
            }
        };
        rows_class.push(k);
        Ok(())
    })?;
    if rows_class.is_empty() {
        return Err(csv_err(path, first_line, "no data rows".to_string()));
    }
    drop(index);
    let integers: Option<Vec<usize>> = names.iter().map(|c| c.parse::<usize>().ok()).collect();
    let (labels, num_classes, names) = match integers {
        Some(values) => {
            if let Some((line, class)) = too_big {
                return Err(csv_err(
                    path,
                    line,
                    format!(
                        "class {class} is out of range: integer classes must be below {limit} (VENTRAL_MAX_CLASSES raises it)"
                    ),
                ));
            }
            let num_classes = values.iter().max().map_or(0, |m| m + 1);
            let mut labels = rows_class;
            for l in &mut labels {
                *l = values[*l];
            }
            (labels, num_classes, None)
        }
        None => (rows_class, names.len(), Some(names)),
    };
    let dataset = InMemoryDataset::new([width - 1, 1, 1], data, labels, num_classes, names)?;
    Ok(dataset.with_columns(path, columns))
}

/// Calls `row(line, fields)` for each non-blank line of the file, in order, with its
/// one-based line number and trimmed fields; stops at the first error. The file is read one
/// line at a time.
fn for_each_row(path: &Path, mut row: impl FnMut(usize, &[&str]) -> Result<()>) -> Result<()> {
    let mut input = Input::open(path)?;
    let mut buf = Vec::new();
    let mut line = 0;
    while input.read_line(&mut buf)? {
        line += 1;
        let text = std::str::from_utf8(&buf)
            .map_err(|_| csv_err(path, line, "not valid UTF-8 text".to_string()))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        row(line, &fields)?;
    }
    Ok(())
}

fn csv_err(path: &Path, line: usize, what: String) -> DataError {
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        what,
    }
}
