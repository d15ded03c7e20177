//! PyTorch checkpoints (`torch.save(model.state_dict())`, `.pth` / `.pt`), read natively:
//! the zip archive ([`zip`]), its pickle ([`pickle`], an allow-list of globals, nothing
//! executed) and the storages the tensors view ([`tensor`]).
//!
//! Accepted: a dict or OrderedDict of names to tensors, or a checkpoint dict whose tensors
//! sit under `state_dict` or `model`; float32 tensors, float64 / float16 / bfloat16 ones
//! converted to f32, int64 ones (BatchNorm's `num_batches_tracked`); contiguous or strided
//! views, shared storages, `nn.Parameter`s. Memory: the pickle (at most
//! [`MAX_PICKLE_BYTES`] and 1/128 of [`Limits::checkpoint_bytes`]) parsed into at most about
//! 100 bytes per pickle byte, the central directory (at most 64 MiB and the file), one
//! storage at a time and the tensors (each at most the limit), all checked against the
//! archive and the limit before they are allocated.

mod error;
mod pickle;
mod tensor;
mod value;
mod zip;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

pub use error::PthError;
use tensor::View;
use value::{Object, Pickle, StorageRef, StorageType, TensorRef, Value};
use zip::Archive;

use super::error::CheckpointError;
use super::state_dict::{StateDict, TensorData, TensorRecord};
use crate::limits::Limits;

/// The largest `data.pkl` read: a state dict's pickle is about 100 bytes per tensor. A
/// lower [`Limits::checkpoint_bytes`] lowers it to 1/128 of the limit, so that the parse
/// (at most about 100 bytes per pickle byte) stays within the limit too.
pub const MAX_PICKLE_BYTES: u64 = 16 << 20;

/// The start of a file `torch.save` wrote before PyTorch 1.6: pickle protocol 2 and its
/// magic number 0x1950a86a20f9469cfc6c as a LONG1.
const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// Whether a file starting with `head` is one for this reader: a zip archive (a local
/// header, or the end record of an empty archive) or a legacy `torch.save` pickle.
pub(super) fn sniff(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") || head == LEGACY_MAGIC
}

/// Bytes [`sniff`] needs.
pub(super) const SNIFF_BYTES: usize = LEGACY_MAGIC.len();

/// Loads the state dict of the `torch.save` file `file` (`len` bytes, at `path`), in the
/// pickle's order.
///
/// # Errors
/// [`CheckpointError::Pth`] naming the file and what is wrong ([`PthError`]);
/// [`CheckpointError::TooLarge`] past [`Limits::checkpoint_bytes`].
pub(super) fn load(
    path: &Path,
    file: File,
    len: u64,
    head: &[u8],
) -> Result<StateDict, CheckpointError> {
    let limit = Limits::current()
        .map_err(CheckpointError::Limit)?
        .checkpoint_bytes;
    let fail = |source: PthError| CheckpointError::Pth {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |bytes: u64| CheckpointError::TooLarge {
        path: path.to_path_buf(),
        bytes,
        limit,
    };
    if head == LEGACY_MAGIC {
        return Err(fail(PthError::Legacy));
    }
    let mut archive = Archive::open(file, len).map_err(fail)?;
    let prefix = data_prefix(&archive).map_err(fail)?;
    // A TorchScript archive has a data.pkl too, of the scripted module's own classes.
    let code = format!("{prefix}code/");
    if archive
        .entries()
        .iter()
        .any(|e| e.name.starts_with(&code) || e.name == format!("{prefix}constants.pkl"))
    {
        return Err(fail(PthError::TorchScript));
    }
    let pkl = archive
        .find(&format!("{prefix}data.pkl"))
        .expect("data_prefix found it")
        .clone();
    let max_pickle = MAX_PICKLE_BYTES.min(limit / 128);
    if pkl.size > max_pickle {
        return Err(fail(PthError::Archive(format!(
            "data.pkl is {} bytes, more than the {max_pickle} read (16 MiB, or VENTRAL_MAX_CHECKPOINT_BYTES / 128)",
            pkl.size
        ))));
    }
    let pickle = pickle::parse(&archive.read(&pkl).map_err(fail)?).map_err(fail)?;
    let big_endian = byte_order(&mut archive, &prefix).map_err(fail)?;
    let items = state_dict_items(&pickle).map_err(fail)?;

    // Plan: every view checked against its storage's declared size and archive entry, and
    // the total checked against the limit, before any tensor is allocated.
    let mut planned = Vec::with_capacity(items.len());
    let mut total = 0u64;
    for (name, tensor) in items {
        let storage = match &pickle.objects[tensor.storage] {
            Object::Storage(s) => s.as_ref(),
            _ => unreachable!("the pickle reader only builds tensors of storages"),
        };
        let entry_name = format!("{prefix}data/{}", storage.key);
        let (view, out_bytes, entry) = plan(&pickle, tensor, storage, archive.find(&entry_name))
            .map_err(|detail| {
                fail(PthError::Tensor {
                    name: name.clone(),
                    detail,
                })
            })?;
        if entry.size > limit {
            return Err(too_large(entry.size));
        }
        total = total.saturating_add(out_bytes);
        if total > limit {
            return Err(too_large(total));
        }
        planned.push((name, storage, view, entry));
    }

    // Read each storage once, in order of first use, and cut every view of it out.
    let mut order: Vec<&str> = Vec::new();
    let mut users: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, _, _, entry)) in planned.iter().enumerate() {
        users
            .entry(entry.name.as_str())
            .or_insert_with(|| {
                order.push(entry.name.as_str());
                Vec::new()
            })
            .push(i);
    }
    let mut data: Vec<Option<TensorData>> = vec![None; planned.len()];
    for entry_name in order {
        let entry = archive.find(entry_name).expect("planned").clone();
        let bytes = archive.read(&entry).map_err(fail)?;
        for &i in &users[entry_name] {
            let (_, storage, view, _) = &planned[i];
            data[i] = Some(tensor::values(&bytes, storage.dtype, big_endian, view));
        }
    }
    let mut entries = Vec::with_capacity(planned.len());
    for ((name, _, view, _), values) in planned.into_iter().zip(data) {
        let shape = view.size.iter().map(|&d| d as usize).collect();
        let values = values.expect("every storage was read");
        let record = TensorRecord::new(&name, shape, values)?;
        entries.push((name, record));
    }
    Ok(StateDict::from_unique(entries))
}

/// The directory holding `data.pkl` (`"archive/"`; the name varies), with its slash.
fn data_prefix(archive: &Archive) -> Result<String, PthError> {
    let mut found = archive.entries().iter().filter_map(|e| {
        let prefix = e.name.strip_suffix("data.pkl")?;
        (prefix.is_empty() || (prefix.ends_with('/') && prefix.matches('/').count() == 1))
            .then(|| prefix.to_string())
    });
    match (found.next(), found.next()) {
        (Some(prefix), None) => Ok(prefix),
        (Some(a), Some(b)) => Err(PthError::Archive(format!(
            "two state pickles, {a}data.pkl and {b}data.pkl"
        ))),
        (None, _) => {
            let scripted = archive
                .entries()
                .iter()
                .any(|e| e.name.ends_with("constants.pkl") || e.name.contains("/code/"));
            Err(if scripted {
                PthError::TorchScript
            } else {
                PthError::Archive(
                    "no data.pkl: a zip file, but not one torch.save wrote".to_string(),
                )
            })
        }
    }
}

/// Whether the storages are big-endian (the `byteorder` entry; absent means little).
fn byte_order(archive: &mut Archive, prefix: &str) -> Result<bool, PthError> {
    let Some(entry) = archive.find(&format!("{prefix}byteorder")).cloned() else {
        return Ok(false);
    };
    if entry.size > 16 {
        return Err(PthError::Archive(format!(
            "byteorder is {} bytes long",
            entry.size
        )));
    }
    let text = archive.read(&entry)?;
    match String::from_utf8_lossy(&text).trim() {
        "little" => Ok(false),
        "big" => Ok(true),
        other => Err(PthError::Archive(format!(
            "byteorder says {other:?}, not \"little\" or \"big\""
        ))),
    }
}

/// The tensors of the state dict in the pickle, by name in the pickle's order (a repeated
/// key keeps its first place and its last value, as a Python dict does).
fn state_dict_items(pickle: &Pickle) -> Result<Vec<(String, &TensorRef)>, PthError> {
    let Some(Object::Dict(root)) = pickle.object(pickle.root) else {
        return Err(PthError::NotStateDict(format!(
            "the pickle holds {}, not a dict",
            pickle.kind(pickle.root)
        )));
    };
    let is_tensor = |v: &Value| matches!(pickle.object(*v), Some(Object::Tensor(_)));
    let key = |k: &Value| match pickle.object(*k) {
        Some(Object::Str(s)) => Some(s.as_str()),
        _ => None,
    };
    let mut dict = root;
    if !root.iter().all(|(_, v)| is_tensor(v)) {
        // A training checkpoint: the tensors under `state_dict` or `model`.
        let nested = ["state_dict", "model"].iter().find_map(|want| {
            root.iter()
                .rev()
                .find(|(k, _)| key(k) == Some(want))
                .and_then(|(_, v)| match pickle.object(*v) {
                    Some(Object::Dict(d)) if d.iter().all(|(_, v)| is_tensor(v)) => Some(d),
                    _ => None,
                })
        });
        dict = nested.ok_or_else(|| {
            let (k, v) = root
                .iter()
                .find(|(_, v)| !is_tensor(v))
                .expect("not all are tensors");
            let name = key(k).map_or_else(|| pickle.kind(*k).to_string(), |s| format!("`{s}`"));
            PthError::NotStateDict(format!(
                "the dict's entry {name} is {}, not a tensor, and no `state_dict` or `model` entry holds a dict of tensors",
                pickle.kind(*v)
            ))
        })?;
    }
    let mut out: Vec<(String, &TensorRef)> = Vec::with_capacity(dict.len());
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(dict.len());
    for (k, v) in dict {
        let name = key(k).ok_or_else(|| {
            PthError::NotStateDict(format!("a key is {}, not a str", pickle.kind(*k)))
        })?;
        let Some(Object::Tensor(tensor)) = pickle.object(*v) else {
            unreachable!("checked above")
        };
        match position.get(name) {
            Some(&i) => out[i].1 = tensor,
            None => {
                position.insert(name, out.len());
                out.push((name.to_string(), tensor));
            }
        }
    }
    Ok(out)
}

/// Checks one tensor: a dtype Ventral reads, its archive entry holding exactly the storage's
/// declared elements, its view inside them. Returns the view, the bytes the tensor takes in
/// memory and the entry.
fn plan(
    pickle: &Pickle,
    tensor: &TensorRef,
    storage: &StorageRef,
    entry: Option<&zip::Entry>,
) -> Result<(View, u64, zip::Entry), String> {
    let element = storage.dtype.element_bytes().ok_or_else(|| {
        format!(
            "its storage is torch.{}; Ventral reads float32, float64, float16, bfloat16 (as float32) and int64",
            storage.dtype.name()
        )
    })?;
    let entry =
        entry.ok_or_else(|| format!("its storage `data/{}` is not in the archive", storage.key))?;
    let declared = storage.numel.checked_mul(element);
    if declared != Some(entry.size) {
        return Err(format!(
            "its storage `data/{}` declares {} elements of {element} bytes, the archive entry holds {} bytes",
            storage.key, storage.numel, entry.size
        ));
    }
    let view = View::new(
        tensor.offset,
        pickle.dims(tensor.size),
        pickle.dims(tensor.stride),
        storage.numel,
    )?;
    let out = if storage.dtype == StorageType::Long {
        8
    } else {
        4
    };
    let bytes = view.numel.saturating_mul(out);
    Ok((view, bytes, entry.clone()))
}
