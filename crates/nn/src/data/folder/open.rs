//! Opening an image folder: its layout, class folders and files (headers read, pixels not),
//! and the validation set (a folder of its own or a seeded part of `train/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Crop, FolderOptions, FolderReport, ImageFolder};
use crate::data::error::{DataError, Result};
use crate::data::image::read_image_size;
use crate::limits::Limits;
use crate::rng::{Purpose, SplitMix64};

/// The file name extensions read as images.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Opens the image folder `dir`: `dir/train/<class>/*` is the training set, and `dir/val`
/// (or else `dir/test`) with the same class folders the validation set, or without either,
/// the fraction [`FolderOptions::val_split`] of `train/` held out.
///
/// # Errors
/// [`DataError::Folder`] for a missing `train/`, no class folders, a class folder without
/// images, a validation class `train/` lacks, no validation folder and no split, or a split
/// that leaves either part empty; [`DataError::TooManyClasses`] past
/// [`Limits::classes`](crate::limits::Limits); [`DataError::Invalid`] for channels other
/// than 1 or 3, a size of 0, or a split outside `(0, 1)`; with `strict`, the error of the
/// first unreadable image; [`DataError::Io`] for a folder that cannot be listed.
pub fn open_image_folder(
    dir: &Path,
    options: &FolderOptions,
) -> Result<(ImageFolder, ImageFolder, FolderReport)> {
    if options.channels != 1 && options.channels != 3 {
        return Err(DataError::Invalid(format!(
            "image folder: {} channels (need 1 or 3)",
            options.channels
        )));
    }
    if options.size == Some(0) {
        return Err(DataError::Invalid("image folder: image size 0".to_string()));
    }
    let folder_err = |dir: &Path, what: String| DataError::Folder {
        dir: dir.to_path_buf(),
        what,
    };
    let train_dir = dir.join("train");
    if !train_dir.is_dir() {
        return Err(folder_err(
            dir,
            "no train/ folder (expected DIR/train/<class>/*.png|jpg, and DIR/val/<class>/… or --val-split)".to_string(),
        ));
    }
    let mut report = FolderReport::default();
    let class_names = class_folders(&train_dir)?;
    let train_files = scan(&train_dir, &class_names, options.strict, &mut report, true)?;
    let Some(first) = train_files.first() else {
        return Err(folder_err(&train_dir, "no readable images".to_string()));
    };
    let size = match options.size {
        Some(s) => [s, s],
        None => [first.2.1, first.2.0],
    };
    let shape = [options.channels, size[0], size[1]];
    let make = |dir: &Path, files: Vec<Found>| ImageFolder {
        dir: dir.to_path_buf(),
        labels: files.iter().map(|f| f.1).collect(),
        files: files.into_iter().map(|f| f.0).collect(),
        class_names: class_names.clone(),
        shape,
        crop: Crop::Centre,
        strict: options.strict,
        failures: Arc::default(),
    };
    let val_dir = ["val", "test"]
        .iter()
        .map(|n| dir.join(n))
        .find(|d| d.is_dir());
    let (train, val) = match (val_dir, options.val_split) {
        (Some(val_dir), _) => {
            let names = class_folders(&val_dir)?;
            if let Some(extra) = names.iter().find(|n| !class_names.contains(n)) {
                return Err(folder_err(
                    &val_dir,
                    format!("class folder {extra:?} is not among train/'s classes"),
                ));
            }
            let val_files = scan(&val_dir, &class_names, options.strict, &mut report, false)?;
            report.validation = format!("{}", val_dir.display());
            (make(&train_dir, train_files), make(&val_dir, val_files))
        }
        (None, Some(fraction)) => {
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(DataError::Invalid(format!(
                    "validation split {fraction} is not between 0 and 1"
                )));
            }
            let n = train_files.len();
            let held = (fraction * n as f64).round() as usize;
            if held == 0 || held == n {
                return Err(folder_err(
                    &train_dir,
                    format!(
                        "holding out {fraction} of {n} images leaves an empty training or validation set"
                    ),
                ));
            }
            let order = SplitMix64::stream(options.seed, Purpose::Split, &[]).permutation(n);
            let mut is_val = vec![false; n];
            for &i in &order[..held] {
                is_val[i] = true;
            }
            let (val, train): (Vec<_>, Vec<_>) =
                train_files.into_iter().zip(is_val).partition(|(_, v)| *v);
            report.validation = format!(
                "{held} of the {n} images of {} (--val-split {fraction}, seed {})",
                train_dir.display(),
                options.seed
            );
            (
                make(&train_dir, train.into_iter().map(|f| f.0).collect()),
                make(&train_dir, val.into_iter().map(|f| f.0).collect()),
            )
        }
        (None, None) => {
            return Err(folder_err(
                dir,
                "no val/ or test/ folder; add one or hold out part of train/ with --val-split F"
                    .to_string(),
            ));
        }
    };
    Ok((train, val, report))
}

/// An image found by a scan: its path, label and (width, height).
type Found = (PathBuf, usize, (usize, usize));

/// The sorted names of the class folders in `dir` (hidden ones ignored).
fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = list(dir)?
        .into_iter()
        .filter(|(_, is_dir)| *is_dir)
        .map(|(name, _)| name)
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(DataError::Folder {
            dir: dir.to_path_buf(),
            what: "no class folders (expected one folder of images per class)".to_string(),
        });
    }
    let limit = Limits::current()?.classes;
    if names.len() > limit {
        return Err(DataError::TooManyClasses {
            path: dir.to_path_buf(),
            classes: names.len(),
            limit,
        });
    }
    Ok(names)
}

/// The entries of `dir` that do not start with `.`: name and whether it is a folder.
fn list(dir: &Path) -> Result<Vec<(String, bool)>> {
    let io_err = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // The entry's own type costs no system call on most file systems; a symlink is
        // followed, as torchvision does.
        let is_dir = match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_dir(),
            _ => entry.path().is_dir(),
        };
        out.push((name, is_dir));
    }
    Ok(out)
}

/// The image files of every class folder of `dir` present among `classes`, in class then
/// name order, with label and (width, height), their headers read. A class folder without
/// image files is an error when `required` (the training set).
fn scan(
    dir: &Path,
    classes: &[String],
    strict: bool,
    report: &mut FolderReport,
    required: bool,
) -> Result<Vec<Found>> {
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue;
        }
        let mut names: Vec<String> = list(&class_dir)?
            .into_iter()
            .filter(|(_, is_dir)| !is_dir)
            .map(|(name, _)| name)
            .collect();
        names.sort();
        let mut candidates = 0;
        for name in names {
            let is_image = Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
            if !is_image {
                report.ignored += 1;
                continue;
            }
            candidates += 1;
            let path = class_dir.join(&name);
            match read_image_size(&path) {
                Ok(size) => files.push((path, label, size)),
                Err(e) if strict => return Err(e),
                Err(e) => report.skipped.push((path, e.to_string())),
            }
        }
        if candidates == 0 && required {
            return Err(DataError::Folder {
                dir: class_dir,
                what: "an empty class: no .png, .jpg or .jpeg files".to_string(),
            });
        }
    }
    Ok(files)
}
