//! Building `torch.save`-shaped files by hand: a stored zip archive and state-dict pickles
//! in the opcodes PyTorch writes (protocol 2), so tests can write hostile variants of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The committed fixtures (written by `make_pth_fixtures.py`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pth")
        .join(name)
}

/// A zip archive of `entries`, each stored (uncompressed) with its CRC-32, as PyTorch's
/// writer lays it out: local headers and data, then the central directory and its end.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, false)
}

/// [`zip`], with `zip64` the layout of an archive past 4 GiB: every size and offset in the
/// central directory moved to a ZIP64 extra field, and the ZIP64 end record and locator
/// before the classic end record (whose fields all say "see ZIP64").
pub fn zip_with(entries: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u64;
        let common = |v: &mut Vec<u8>, in_directory: bool| {
            let wide = zip64 && in_directory;
            let size = if wide { u32::MAX } else { data.len() as u32 };
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&[0; 4]); // time, date
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&(if wide { 28u16 } else { 0 }).to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out, false);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central, true);
        central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        let offset32 = if zip64 { u32::MAX } else { offset as u32 };
        central.extend_from_slice(&offset32.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        if zip64 {
            central.extend_from_slice(&1u16.to_le_bytes());
            central.extend_from_slice(&24u16.to_le_bytes());
            for v in [data.len() as u64, data.len() as u64, offset] {
                central.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let directory_at = out.len() as u64;
    out.extend_from_slice(&central);
    let count = entries.len() as u64;
    if zip64 {
        let record_at = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0]); // versions
        out.extend_from_slice(&[0; 8]); // disks
        for v in [count, count, central.len() as u64, directory_at] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&record_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    let (count16, size32, at32) = if zip64 {
        (u16::MAX, u32::MAX, u32::MAX)
    } else {
        (count as u16, central.len() as u32, directory_at as u32)
    };
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count16.to_le_bytes());
    out.extend_from_slice(&count16.to_le_bytes());
    out.extend_from_slice(&size32.to_le_bytes());
    out.extend_from_slice(&at32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// One tensor of a hand-made state dict: `_rebuild_tensor_v2` of storage `key`.
pub struct Tensor {
    pub name: &'static str,
    /// `FloatStorage`, `LongStorage`, …
    pub storage: &'static str,
    pub key: &'static str,
    pub numel: u64,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

impl Tensor {
    /// A contiguous float32 tensor that is its whole storage.
    pub fn float(name: &'static str, key: &'static str, size: Vec<u64>) -> Tensor {
        let numel = size.iter().product();
        let mut stride = vec![1; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1];
        }
        Tensor {
            name,
            storage: "FloatStorage",
            key,
            numel,
            offset: 0,
            size,
            stride,
        }
    }
}

fn unicode(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn int(out: &mut Vec<u8>, v: u64) {
    if v < 256 {
        out.extend_from_slice(&[b'K', v as u8]);
    } else {
        out.extend_from_slice(&[0x8a, 8]);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn ints(out: &mut Vec<u8>, vs: &[u64]) {
    out.push(b'(');
    for &v in vs {
        int(out, v);
    }
    out.push(b't');
}

/// The pickle items of one tensor (`name`, then the tensor), ready for SETITEMS.
pub fn tensor_items(out: &mut Vec<u8>, t: &Tensor) {
    unicode(out, t.name);
    out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    out.push(b'(');
    unicode(out, "storage");
    out.extend_from_slice(format!("ctorch\n{}\n", t.storage).as_bytes());
    unicode(out, t.key);
    unicode(out, "cpu");
    int(out, t.numel);
    out.extend_from_slice(b"tQ");
    int(out, t.offset);
    ints(out, &t.size);
    ints(out, &t.stride);
    out.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
}

/// A protocol-2 pickle of an OrderedDict of `tensors`, as `torch.save(state_dict)` writes.
pub fn state_pickle(tensors: &[Tensor]) -> Vec<u8> {
    let mut out = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(".to_vec();
    for t in tensors {
        tensor_items(&mut out, t);
    }
    out.extend_from_slice(b"u.");
    out
}

/// A `torch.save`-shaped archive: `archive/data.pkl`, `archive/byteorder` and each storage
/// as `archive/data/<key>`.
pub fn archive(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut entries: Vec<(String, &[u8])> = vec![
        ("archive/data.pkl".into(), pickle),
        ("archive/byteorder".into(), b"little"),
    ];
    for (key, bytes) in storages {
        entries.push((format!("archive/data/{key}"), bytes));
    }
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    zip(&refs)
}

/// f32 values as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// FNV-1a, 64 bits (the hash reference.json records).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
