//! `ventral data verify`: checks a dataset's files — present, readable by Ventral's readers
//! (magic numbers, header sizes, lengths, labels) and, for the files the repository ships,
//! byte-identical to them by SHA-256.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use sha2::{Digest, Sha256};
use ventral_nn::data::{
    CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, Dataset, read_cifar10_batch, read_csv, read_digits_csv,
    read_idx_images, read_idx_labels,
};

use crate::train::default_data_dir;

/// Arguments of `ventral data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    action: DataAction,
}

#[derive(Debug, Subcommand)]
enum DataAction {
    /// Per-channel mean and standard deviation of a training set, printed as the
    /// `--normalize MEAN,..:STD,..` flag of `ventral train`.
    Stats(crate::data_tools::StatsArgs),
    /// Write a dataset (train and test splits) as an image folder of PNG or JPEG files:
    /// OUT/train/<class>/*, OUT/test/<class>/*, the layout of `--dataset folder:OUT`.
    ExportFolder(crate::data_tools::ExportArgs),
    /// Check a dataset's files: presence, format (magic, header sizes, lengths, labels),
    /// and SHA-256 against the files the repository ships (data/*/README.md).
    Verify {
        /// mnist, fashion-mnist, cifar10, digits, or csv:PATH.
        data: String,
        /// Directory holding the files (default: the repository's `data/<dataset>`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print one JSON object per file instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// SHA-256 of the files the project ships or documents (`data/mnist/README.md`,
/// `data/digits/README.md`, `shared/data/README.md`), compressed and decompressed.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "mnist",
        "train-images-idx3-ubyte.gz",
        "12bacf187eba4f770a04d97be5dbaad9289fe5d89a89729b6af3255c8bbfa9e1",
    ),
    (
        "mnist",
        "train-labels-idx1-ubyte.gz",
        "7f4ede8117c9f121a708539f3c1b71dc8cb827447542df31cdf7b815d0762e1f",
    ),
    (
        "mnist",
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "mnist",
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    (
        "mnist",
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "mnist",
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "mnist",
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "mnist",
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    (
        "fashion-mnist",
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    (
        "fashion-mnist",
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    (
        "fashion-mnist",
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "fashion-mnist",
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
    (
        "fashion-mnist",
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "fashion-mnist",
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        "fashion-mnist",
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "fashion-mnist",
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
    (
        "digits",
        "digits.csv.gz",
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
    ),
    (
        "digits",
        "digits.csv",
        "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",
    ),
];

/// What kind of file a dataset expects, and so which reader checks it.
#[derive(Debug, Clone, Copy)]
enum Format {
    IdxImages,
    IdxLabels,
    DigitsCsv,
    Cifar,
    Csv,
}

/// A file a dataset needs: the names it may have (`.gz` or not) and its format.
type Expected = (Vec<String>, Format);

/// One file's verdict.
struct FileReport {
    name: String,
    bytes: Option<u64>,
    sha256: Option<String>,
    /// `Some(true)` matches the shipped file, `Some(false)` differs, `None` none is known.
    known_match: Option<bool>,
    /// What the reader found, or its error.
    content: Result<String, String>,
}

impl FileReport {
    fn ok(&self) -> bool {
        self.content.is_ok() && self.known_match != Some(false)
    }
}

fn sha256(path: &Path) -> std::io::Result<(u64, String)> {
    let (mut file, _) = ventral_nn::limits::open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let mut hex = String::with_capacity(64);
    for b in hasher.finalize() {
        let _ = write!(hex, "{b:02x}");
    }
    Ok((total, hex))
}

fn read_content(path: &Path, format: Format) -> Result<String, String> {
    let describe = |r: Result<String, ventral_nn::data::DataError>| r.map_err(|e| e.to_string());
    describe(match format {
        Format::IdxImages => {
            read_idx_images(path).map(|i| format!("{} images of {}x{}", i.count, i.rows, i.cols))
        }
        Format::IdxLabels => read_idx_labels(path, 10).map(|l| format!("{} labels", l.len())),
        Format::DigitsCsv => read_digits_csv(path).map(|d| format!("{} samples of 8x8", d.len())),
        Format::Cifar => {
            read_cifar10_batch(path).map(|b| format!("{} images of 3x32x32", b.labels.len()))
        }
        Format::Csv => read_csv(path).map(|d| {
            format!(
                "{} rows of {} features, {} classes",
                d.len(),
                d.sample_shape()[0],
                d.num_classes()
            )
        }),
    })
}

fn check_file(dataset: &str, dir: &Path, candidates: &[String], format: Format) -> FileReport {
    let found = candidates.iter().find(|n| dir.join(n).is_file());
    let Some(name) = found else {
        return FileReport {
            name: candidates.join(" or "),
            bytes: None,
            sha256: None,
            known_match: None,
            content: Err(format!("missing from {}", dir.display())),
        };
    };
    let path = dir.join(name);
    // An unreadable file is reported by its reader below, with the operating system's error.
    let (bytes, hash) = match sha256(&path) {
        Ok((b, h)) => (Some(b), Some(h)),
        Err(_) => (None, None),
    };
    let known = KNOWN
        .iter()
        .find(|(d, f, _)| *d == dataset && f == name)
        .map(|(_, _, h)| *h);
    let known_match = match (known, &hash) {
        (Some(k), Some(h)) => Some(k == h),
        _ => None,
    };
    FileReport {
        name: name.clone(),
        bytes,
        sha256: hash,
        known_match,
        content: read_content(&path, format),
    }
}

/// The files of `dataset` in `dir`, each with its accepted names and format.
fn expected_files(dataset: &str, dir: &Path) -> Result<(PathBuf, Vec<Expected>)> {
    let both = |base: &str| vec![format!("{base}.gz"), base.to_string()];
    Ok(match dataset {
        "mnist" | "fashion-mnist" => {
            let mut files = Vec::new();
            for split in ["train", "t10k"] {
                files.push((
                    both(&format!("{split}-images-idx3-ubyte")),
                    Format::IdxImages,
                ));
                files.push((
                    both(&format!("{split}-labels-idx1-ubyte")),
                    Format::IdxLabels,
                ));
            }
            (dir.to_path_buf(), files)
        }
        "digits" => (
            dir.to_path_buf(),
            vec![(both("digits.csv"), Format::DigitsCsv)],
        ),
        "cifar10" => {
            let base = if dir.join("cifar-10-batches-bin").is_dir() {
                dir.join("cifar-10-batches-bin")
            } else {
                dir.to_path_buf()
            };
            let files = CIFAR10_TRAIN_FILES
                .iter()
                .chain([&CIFAR10_TEST_FILE])
                .map(|f| (vec![f.to_string()], Format::Cifar))
                .collect();
            (base, files)
        }
        other => match other.strip_prefix("csv:") {
            Some(path) if !path.is_empty() => {
                let path = dir.join(path);
                let parent = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (parent, vec![(vec![name], Format::Csv)])
            }
            _ => bail!(
                "unknown dataset {other:?}: expected mnist, fashion-mnist, cifar10, digits or csv:PATH"
            ),
        },
    })
}

/// Runs `ventral data`.
///
/// # Errors
/// An unknown dataset; any file missing, unreadable, or different from the shipped one.
pub fn run(args: DataArgs) -> Result<()> {
    let (data, data_dir, json) = match args.action {
        DataAction::Verify {
            data,
            data_dir,
            json,
        } => (data, data_dir, json),
        DataAction::Stats(args) => return crate::data_tools::stats(args),
        DataAction::ExportFolder(args) => return crate::data_tools::export_folder(args),
    };
    let dir = match data_dir {
        Some(d) => d,
        None if data.starts_with("csv:") => PathBuf::from("."),
        None => default_data_dir(&data),
    };
    let (base, files) = expected_files(&data, &dir)?;
    let reports: Vec<FileReport> = files
        .iter()
        .map(|(names, format)| check_file(&data, &base, names, *format))
        .collect();
    for r in &reports {
        let checksum = match r.known_match {
            Some(true) => "sha256 matches the shipped file".to_string(),
            Some(false) => format!(
                "sha256 {} differs from the shipped file",
                r.sha256.as_deref().unwrap_or("?")
            ),
            None => match &r.sha256 {
                Some(h) => format!("sha256 {h} (no published checksum)"),
                None => "not hashed".to_string(),
            },
        };
        if json {
            println!(
                "{}",
                json!({"dataset": &data, "file": &r.name, "bytes": r.bytes, "sha256": &r.sha256,
                       "sha256_matches": r.known_match, "content": r.content.as_ref().ok(),
                       "error": r.content.as_ref().err(), "ok": r.ok()})
            );
        } else {
            let content = match &r.content {
                Ok(c) => c.clone(),
                Err(e) => format!("unreadable: {e}"),
            };
            let bytes = r.bytes.map_or("-".to_string(), |b| format!("{b} bytes"));
            println!(
                "{:<4}  {:<28} {:>16}  {content}; {checksum}",
                if r.ok() { "ok" } else { "FAIL" },
                r.name,
                bytes
            );
        }
    }
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} files of {data} in {} failed verification",
            reports.len(),
            base.display()
        );
    }
    if !json {
        println!(
            "all {} files of {data} verified in {}",
            reports.len(),
            base.display()
        );
    }
    Ok(())
}
