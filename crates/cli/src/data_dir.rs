//! Where a named dataset's files are when `--data-dir` is not given.
//!
//! In order: `$VENTRAL_DATA/<name>` when that variable is set; `./data/<name>` relative to
//! the current directory (the repository root, where the README's commands run); the
//! `data/<name>` of the checkout this binary was built from, if it still exists. An
//! installed binary therefore never depends on its build tree, and errors say where they
//! looked and how to point elsewhere.

use std::path::{Path, PathBuf};

use ventral_nn::data::{self, InMemoryDataset, Split};

/// The variable naming a folder that holds one sub-folder per dataset (`mnist/`, …).
pub const DATA_VAR: &str = "VENTRAL_DATA";

/// The `data/` folder of the checkout this binary was built from.
fn built_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// The folder of dataset `name` (see the module documentation for the order).
pub fn default_data_dir(name: &str) -> PathBuf {
    if let Some(root) = std::env::var_os(DATA_VAR).filter(|r| !r.is_empty()) {
        return PathBuf::from(root).join(name);
    }
    let local = Path::new("data").join(name);
    if local.is_dir() {
        return local;
    }
    match built_data().join(name).canonicalize() {
        Ok(built) if built.is_dir() => built,
        _ => local,
    }
}

/// The end of an error about dataset `name`'s default folder: where it was looked for and
/// how to choose another.
pub fn data_dir_hint(name: &str) -> String {
    if let Some(root) = std::env::var_os(DATA_VAR).filter(|r| !r.is_empty()) {
        return format!(
            "looked in {}/{name} ({DATA_VAR} is set); pass --data-dir DIR or change {DATA_VAR}",
            Path::new(&root).display()
        );
    }
    format!(
        "looked in ./data/{name} and {}/{name}; pass --data-dir DIR, or set {DATA_VAR} to a folder holding {name}/",
        built_data().display()
    )
}

/// Loads split `split` of dataset `name` from `dir`, or when it is `None` from the default
/// folder (a `csv:PATH` from the current directory), adding [`data_dir_hint`] to the error
/// of a missing file.
///
/// # Errors
/// Those of [`data::load`].
pub fn load_named(name: &str, dir: Option<&Path>, split: Split) -> anyhow::Result<InMemoryDataset> {
    let (path, hint) = match dir {
        Some(d) => (d.to_path_buf(), None),
        None if name.starts_with("csv:") => (PathBuf::from("."), None),
        None => (default_data_dir(name), Some(data_dir_hint(name))),
    };
    data::load(name, &path, split).map_err(|e| match (&e, hint) {
        (data::DataError::NotFound { .. }, Some(hint)) => anyhow::anyhow!("{e}; {hint}"),
        _ => e.into(),
    })
}
