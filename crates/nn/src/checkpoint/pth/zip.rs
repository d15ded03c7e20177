//! The zip archive `torch.save` writes: a hand-written reader of its central directory.
//!
//! PyTorch's writer (miniz) stores every entry uncompressed, sizes in the central directory
//! (bit 3: data descriptors), ZIP64 records past 4 GiB, and padding in the local headers'
//! extra fields. This reader takes what such an archive needs — the end-of-central-directory
//! record (ZIP64 too), the central directory, stored or deflated entries, CRC-32 checks — and
//! nothing else (no encryption, no multi-disk archives). Every offset and size is checked
//! against the file before it is used; only the central directory (at most
//! [`MAX_DIRECTORY_BYTES`] and at most the file) and the entries asked for are read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use flate2::Crc;
use flate2::read::DeflateDecoder;

use super::error::PthError;

/// The largest central directory read: about a million entries.
pub(super) const MAX_DIRECTORY_BYTES: u64 = 64 << 20;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: u64 = 22;

fn bad(detail: impl Into<String>) -> PthError {
    PthError::Archive(detail.into())
}

fn io(e: std::io::Error) -> PthError {
    bad(format!("read failed: {e}"))
}

/// One file in the archive, as the central directory describes it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its path in the archive.
    pub name: String,
    /// Its size once decompressed.
    pub size: u64,
    method: u16,
    crc: u32,
    compressed: u64,
    local_offset: u64,
}

/// An open archive: the file and its central directory.
pub(super) struct Archive {
    file: File,
    /// Where the central directory starts: every entry's data ends before it.
    directory_start: u64,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

/// Little-endian fields read from a byte slice, each bounds-checked.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PthError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| bad("the central directory is truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, PthError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, PthError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, PthError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

fn read_at(file: &mut File, offset: u64, len: usize) -> Result<Vec<u8>, PthError> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    file.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Where the central directory is and how many entries it has.
struct Directory {
    offset: u64,
    size: u64,
    count: u64,
    /// Where the end records start (the directory must end before).
    end: u64,
}

fn find_directory(file: &mut File, len: u64) -> Result<Directory, PthError> {
    if len < EOCD_LEN {
        return Err(bad(format!(
            "{len} bytes, too short for the end-of-directory record"
        )));
    }
    // The record is the last 22 bytes plus a comment of at most 65,535 bytes.
    let tail_len = len.min(EOCD_LEN + 0xffff);
    let tail_start = len - tail_len;
    let tail = read_at(file, tail_start, tail_len as usize)?;
    let pos = (0..=tail.len() - EOCD_LEN as usize)
        .rev()
        .find(|&i| {
            tail[i..i + 4] == EOCD_SIG.to_le_bytes()
                && usize::from(u16::from_le_bytes([tail[i + 20], tail[i + 21]]))
                    == tail.len() - i - EOCD_LEN as usize
        })
        .ok_or_else(|| bad("no end-of-central-directory record (truncated or not a zip file)"))?;
    let mut f = Fields::new(&tail[pos + 4..]);
    let (disk, directory_disk) = (f.u16()?, f.u16()?);
    let (_on_disk, count) = (f.u16()?, f.u16()?);
    let (size, offset) = (f.u32()?, f.u32()?);
    let eocd_at = tail_start + pos as u64;
    let needs_zip64 = count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff;
    if !needs_zip64 {
        if disk != 0 || directory_disk != 0 {
            return Err(bad("a multi-disk archive"));
        }
        return Ok(Directory {
            offset: offset.into(),
            size: size.into(),
            count: count.into(),
            end: eocd_at,
        });
    }
    // ZIP64: a 20-byte locator right before the record points at the 56-byte ZIP64 record.
    let locator_at = eocd_at
        .checked_sub(20)
        .ok_or_else(|| bad("the ZIP64 locator is missing"))?;
    let locator = read_at(file, locator_at, 20)?;
    let mut f = Fields::new(&locator);
    if f.u32()? != EOCD64_LOCATOR_SIG {
        return Err(bad("the ZIP64 locator is missing"));
    }
    let _disk = f.u32()?;
    let record_at = f.u64()?;
    if record_at.checked_add(56).is_none_or(|e| e > locator_at) {
        return Err(bad(format!(
            "the ZIP64 record's offset {record_at} is outside the file"
        )));
    }
    let record = read_at(file, record_at, 56)?;
    let mut f = Fields::new(&record);
    if f.u32()? != EOCD64_SIG {
        return Err(bad("the ZIP64 end record is missing"));
    }
    let _record_size = f.u64()?;
    let (_made, _needed) = (f.u16()?, f.u16()?);
    let (disk, directory_disk) = (f.u32()?, f.u32()?);
    let (_on_disk, count) = (f.u64()?, f.u64()?);
    let (size, offset) = (f.u64()?, f.u64()?);
    if disk != 0 || directory_disk != 0 {
        return Err(bad("a multi-disk archive"));
    }
    Ok(Directory {
        offset,
        size,
        count,
        end: record_at,
    })
}

/// The ZIP64 extended-information extra field: the 64-bit values of the fields set to
/// 0xFFFFFFFF, in the order size, compressed size, local header offset.
fn zip64_extra(extra: &[u8], entry: &mut Entry, raw: [bool; 3]) -> Result<(), PthError> {
    let mut f = Fields::new(extra);
    while f.at + 4 <= extra.len() {
        let (id, len) = (f.u16()?, f.u16()?);
        let body = f.take(len.into())?;
        if id != 0x0001 {
            continue;
        }
        let mut b = Fields::new(body);
        if raw[0] {
            entry.size = b.u64()?;
        }
        if raw[1] {
            entry.compressed = b.u64()?;
        }
        if raw[2] {
            entry.local_offset = b.u64()?;
        }
        return Ok(());
    }
    if raw.iter().any(|&r| r) {
        return Err(bad(format!(
            "`{}` needs a ZIP64 extra field and has none",
            entry.name
        )));
    }
    Ok(())
}

impl Archive {
    /// Reads the central directory of the zip archive `file` (of `len` bytes).
    ///
    /// # Errors
    /// [`PthError::Archive`] if it is not a zip archive, is truncated, or its directory is
    /// inconsistent with the file (entries outside it, duplicate names, encryption,
    /// compression other than stored or deflate).
    pub(super) fn open(mut file: File, len: u64) -> Result<Self, PthError> {
        let dir = find_directory(&mut file, len)?;
        if dir.offset.checked_add(dir.size).is_none_or(|e| e > dir.end) {
            return Err(bad(format!(
                "the central directory ({} bytes at {}) runs past its end record at {} (truncated?)",
                dir.size, dir.offset, dir.end
            )));
        }
        if dir.size > MAX_DIRECTORY_BYTES {
            return Err(bad(format!(
                "a central directory of {} bytes, more than the {MAX_DIRECTORY_BYTES} read",
                dir.size
            )));
        }
        // Each central record is at least 46 bytes.
        if dir.count > dir.size / 46 {
            return Err(bad(format!(
                "{} entries cannot fit in a {}-byte central directory",
                dir.count, dir.size
            )));
        }
        let directory = read_at(&mut file, dir.offset, dir.size as usize)?;
        let mut f = Fields::new(&directory);
        let mut entries = Vec::with_capacity(dir.count as usize);
        let mut by_name = HashMap::with_capacity(dir.count as usize);
        for _ in 0..dir.count {
            if f.u32()? != CENTRAL_SIG {
                return Err(bad("a central directory record has a bad signature"));
            }
            let (_made, _needed, flags, method) = (f.u16()?, f.u16()?, f.u16()?, f.u16()?);
            let (_time, _date) = (f.u16()?, f.u16()?);
            let crc = f.u32()?;
            let (compressed, size) = (f.u32()?, f.u32()?);
            let (name_len, extra_len, comment_len) = (f.u16()?, f.u16()?, f.u16()?);
            let (_disk, _internal, _external) = (f.u16()?, f.u16()?, f.u32()?);
            let local_offset = f.u32()?;
            let name = String::from_utf8_lossy(f.take(name_len.into())?).into_owned();
            let extra = f.take(extra_len.into())?;
            f.take(comment_len.into())?;
            let mut entry = Entry {
                name,
                size: size.into(),
                method,
                crc,
                compressed: compressed.into(),
                local_offset: local_offset.into(),
            };
            let raw = [size, compressed, local_offset].map(|v| v == 0xffff_ffff);
            zip64_extra(extra, &mut entry, raw)?;
            if flags & 1 != 0 {
                return Err(bad(format!("`{}` is encrypted", entry.name)));
            }
            if method != 0 && method != 8 {
                return Err(bad(format!(
                    "`{}` uses compression method {method}; stored (0) and deflate (8) are read",
                    entry.name
                )));
            }
            if method == 0 && entry.compressed != entry.size {
                return Err(bad(format!(
                    "`{}` is stored but declares {} bytes compressed and {} uncompressed",
                    entry.name, entry.compressed, entry.size
                )));
            }
            if entry
                .local_offset
                .checked_add(30)
                .and_then(|e| e.checked_add(entry.compressed))
                .is_none_or(|e| e > dir.offset)
            {
                return Err(bad(format!(
                    "`{}` ({} bytes at {}) runs into the central directory at {}",
                    entry.name, entry.compressed, entry.local_offset, dir.offset
                )));
            }
            if by_name.insert(entry.name.clone(), entries.len()).is_some() {
                return Err(bad(format!("`{}` appears twice", entry.name)));
            }
            entries.push(entry);
        }
        Ok(Archive {
            file,
            directory_start: dir.offset,
            entries,
            by_name,
        })
    }

    /// Every entry, in directory order.
    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub(super) fn find(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// Reads `entry` whole, decompressed and checked against its size and CRC-32. The
    /// caller has checked `entry.size` against its limits: this allocates that many bytes.
    ///
    /// # Errors
    /// [`PthError::Archive`] if the entry's local header is inconsistent, its data is
    /// truncated, does not inflate to its size or fails its CRC.
    pub(super) fn read(&mut self, entry: &Entry) -> Result<Vec<u8>, PthError> {
        let header = read_at(&mut self.file, entry.local_offset, 30)?;
        let mut f = Fields::new(&header);
        if f.u32()? != LOCAL_SIG {
            return Err(bad(format!(
                "`{}`: no local header at {}",
                entry.name, entry.local_offset
            )));
        }
        f.take(22)?;
        let (name_len, extra_len) = (u64::from(f.u16()?), u64::from(f.u16()?));
        let start = entry.local_offset + 30 + name_len + extra_len;
        if start
            .checked_add(entry.compressed)
            .is_none_or(|e| e > self.directory_start)
        {
            return Err(bad(format!(
                "`{}`: its data runs into the central directory",
                entry.name
            )));
        }
        let size = usize::try_from(entry.size)
            .map_err(|_| bad(format!("`{}` is too large for memory", entry.name)))?;
        let mut out = Vec::new();
        out.try_reserve_exact(size)
            .map_err(|_| bad(format!("`{}`: cannot allocate {size} bytes", entry.name)))?;
        out.resize(size, 0);
        self.file.seek(SeekFrom::Start(start)).map_err(io)?;
        let raw = (&mut self.file).take(entry.compressed);
        let mut reader: Box<dyn Read + '_> = if entry.method == 0 {
            Box::new(raw)
        } else {
            Box::new(DeflateDecoder::new(raw))
        };
        let short = |e: std::io::Error| {
            bad(format!(
                "`{}`: {e} (its directory record says {} bytes; truncated or corrupt)",
                entry.name, entry.size
            ))
        };
        reader.read_exact(&mut out).map_err(short)?;
        // An entry that inflates past its declared size is corrupt too.
        if reader.read(&mut [0u8; 1]).map_err(short)? != 0 {
            return Err(bad(format!(
                "`{}` holds more than the {} bytes its directory record says",
                entry.name, entry.size
            )));
        }
        let mut crc = Crc::new();
        crc.update(&out);
        if crc.sum() != entry.crc {
            return Err(bad(format!(
                "`{}` fails its CRC-32 check (corrupt)",
                entry.name
            )));
        }
        Ok(out)
    }
}
