//! TensorBoard event files in the run directory (`tensorboard --logdir runs`): a listener
//! that writes the scalars of `metrics.jsonl` as they come.
//!
//! The file is `events.out.tfevents.<unix seconds>.<host>`, a sequence of records framed as
//! TensorFlow's `TFRecord`: the data's length (u64, little-endian), the masked CRC-32C of
//! those 8 bytes, the data, the masked CRC-32C of the data. Each record holds one `Event`
//! protocol buffer: the first says `file_version: "brain.Event:2"`, the others carry
//! `wall_time`, `step` and a `Summary` of `{tag, simple_value}` values. The handful of
//! protobuf fields is encoded here by hand (varint keys, length-delimited strings and
//! messages, fixed 32- and 64-bit floats), and CRC-32C is the 256-entry table loop of
//! RFC 3720: no dependency for forty lines.
//!
//! Scalars, against the optimizer step: every 100 steps `step/loss` and `step/lr` (the
//! step records of `metrics.jsonl`); after every epoch `train/loss`, `train/accuracy`,
//! `test/loss`, `test/accuracy`, `lr`, and with `--ema` `ema/test_loss` and
//! `ema/test_accuracy`. Every file then says `SessionLog` START at the step it starts from
//! (0, or a resumed run's next step), as PyTorch's `SummaryWriter(purge_step=…)` does:
//! TensorBoard's event accumulator takes the first START of a run as its start and, on each
//! later one, drops the points already read at or past that step, so a resumed run's curve
//! does not double back (readers that ignore `SessionLog` show both). A new run
//! (`--overwrite`) removes the event files of the run it replaces.
//!
//! After every epoch the first convolution's filters are also drawn from
//! `last.safetensors`, as `ventral visualize filters` draws them, into an image summary
//! `filters/<name>` (a PNG).
//!
//! A file that cannot be created or written is reported in one line and training goes on
//! without it (as for plots).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ventral_nn::{Module, Tensor, named_parameters};
use ventral_train::{Callback, CheckpointKind, CheckpointSaved, EpochEnd, StepEnd};

/// The CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC stored
/// in data does not look like a CRC of it.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// A protobuf message being encoded.
#[derive(Default)]
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint(field << 3 | wire);
    }

    fn bytes(&mut self, field: u64, data: &[u8]) {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }
}

/// An `Event` with `wall_time` (field 1, double) and `step` (field 2, int64), then `rest`.
fn event(wall_time: f64, step: u64, rest: impl FnOnce(&mut Proto)) -> Vec<u8> {
    let mut e = Proto::default();
    e.key(1, 1);
    e.0.extend_from_slice(&wall_time.to_le_bytes());
    e.key(2, 0);
    e.varint(step);
    rest(&mut e);
    e.0
}

/// An `Event` whose `summary` (field 5) holds one `Value{tag: 1, simple_value: 2}` per
/// scalar.
pub fn scalars_event(wall_time: f64, step: u64, scalars: &[(&str, f32)]) -> Vec<u8> {
    event(wall_time, step, |e| {
        let mut summary = Proto::default();
        for (tag, value) in scalars {
            let mut v = Proto::default();
            v.bytes(1, tag.as_bytes());
            v.key(2, 5);
            v.0.extend_from_slice(&value.to_le_bytes());
            summary.bytes(1, &v.0);
        }
        e.bytes(5, &summary.0);
    })
}

/// An `Event` whose summary holds one `Value{tag: 1, image: 4}`, the image being
/// `Image{height: 1, width: 2, colorspace: 3 (RGB), encoded_image_string: 4 (PNG)}`.
pub fn image_event(
    wall_time: f64,
    step: u64,
    tag: &str,
    (width, height, png): (usize, usize, &[u8]),
) -> Vec<u8> {
    event(wall_time, step, |e| {
        let mut image = Proto::default();
        image.key(1, 0);
        image.varint(height as u64);
        image.key(2, 0);
        image.varint(width as u64);
        image.key(3, 0);
        image.varint(3);
        image.bytes(4, png);
        let mut v = Proto::default();
        v.bytes(1, tag.as_bytes());
        v.bytes(4, &image.0);
        let mut summary = Proto::default();
        summary.bytes(1, &v.0);
        e.bytes(5, &summary.0);
    })
}

/// The name of `model`'s first rank-4 `weight` parameter (its first convolution's
/// filters), if it has one.
pub fn first_filters(model: &mut dyn Module) -> Option<String> {
    named_parameters(model)
        .into_iter()
        .find(|(name, p)| p.dims().len() == 4 && name.ends_with("weight"))
        .map(|(name, _)| name)
}

/// One TFRecord: length, its masked CRC, the data, its masked CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The machine's name, as TensorFlow puts it in event file names.
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// The event file of one `ventral train` invocation (rank 0), or nothing once it failed.
pub struct Board {
    file: Option<(BufWriter<File>, PathBuf)>,
    /// The state-dict name of the filters drawn after every epoch, until drawing fails.
    filters: Option<String>,
}

impl Board {
    /// No file: a process that does not write (ranks other than 0).
    pub fn off() -> Self {
        Self {
            file: None,
            filters: None,
        }
    }

    /// A new event file in `dir`, opened with its `file_version` event and a
    /// `SessionLog{status: START}` at step 0, or for a resumed run (`resumed_at` = the saved
    /// step) at the next step. A failure is reported in one line and the board stays off.
    pub fn open(dir: &Path, resumed_at: Option<u64>) -> Self {
        if resumed_at.is_none() {
            remove_old_events(dir);
        }
        let mut board = Self::off();
        match Self::create(dir) {
            Ok(file) => board.file = Some(file),
            Err((path, e)) => warn(&path, &e),
        }
        board.write(&event(now(), 0, |e| e.bytes(3, b"brain.Event:2")));
        // SessionLog (field 6) with status START (field 1, enum value 1): TensorBoard takes
        // the first of a run as its start and every later one as a restart.
        let start = resumed_at.map_or(0, |step| step + 1);
        board.write(&event(now(), start, |e| e.bytes(6, &[0x08, 0x01])));
        board
    }

    fn create(dir: &Path) -> Result<(BufWriter<File>, PathBuf), (PathBuf, std::io::Error)> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let base = format!("events.out.tfevents.{secs}.{}", host());
        let mut last = None;
        for n in 0..100 {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => return Ok((BufWriter::new(f), path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((path, e)),
                Err(e) => return Err((path, e)),
            }
        }
        Err(last.unwrap_or_else(|| (dir.to_path_buf(), std::io::ErrorKind::Other.into())))
    }

    /// Appends one event and flushes it, so TensorBoard shows it live.
    fn write(&mut self, event: &[u8]) {
        let Some((file, path)) = self.file.as_mut() else {
            return;
        };
        if let Err(e) = file.write_all(&record(event)).and_then(|()| file.flush()) {
            warn(path, &e);
            self.file = None;
        }
    }

    /// Also draws the filters `name` (a rank-4 parameter, see [`first_filters`]) from every
    /// `last.safetensors` the trainer saves, as an image under `filters/NAME`.
    pub fn with_filters(mut self, name: Option<String>) -> Self {
        self.filters = name;
        self
    }

    /// The image event of the filters in the checkpoint at `path`.
    fn filters_event(name: &str, path: &Path, step: u64) -> anyhow::Result<Vec<u8>> {
        let state = ventral_nn::checkpoint::load(path)?;
        let record = state
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("{} holds no `{name}`", path.display()))?;
        let values = record
            .as_f32()
            .ok_or_else(|| anyhow::anyhow!("`{name}` is not f32"))?;
        let weight = Tensor::from_vec(values.to_vec(), record.shape().to_vec())?;
        let (width, height, png) = crate::visualize::filters_png(&weight)?;
        Ok(image_event(
            now(),
            step,
            &format!("filters/{name}"),
            (width, height, &png),
        ))
    }

    fn scalars(&mut self, step: u64, scalars: &[(&str, f32)]) {
        if self.file.is_some() {
            self.write(&scalars_event(now(), step, scalars));
        }
    }
}

/// Removes the event files of the run a new one replaces (`--overwrite`), so TensorBoard
/// does not mix the two; a file that cannot be removed is reported and left.
fn remove_old_events(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_events = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("events.out.tfevents."));
        if is_events
            && entry.file_type().is_ok_and(|t| t.is_file())
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            warn(&entry.path(), &e);
        }
    }
}

fn warn(path: &Path, e: &std::io::Error) {
    eprintln!(
        "ventral: warning: could not write the TensorBoard events {}: {e}; training goes on without them (the training state is saved)",
        path.display()
    );
}

impl Callback for Board {
    fn on_checkpoint(&mut self, e: &CheckpointSaved) {
        if e.kind != CheckpointKind::Last || self.file.is_none() {
            return;
        }
        let Some(name) = self.filters.clone() else {
            return;
        };
        match Self::filters_event(&name, &e.path, e.step) {
            Ok(event) => self.write(&event),
            Err(err) => {
                eprintln!(
                    "ventral: warning: could not draw `{name}` for TensorBoard: {err:#}; training goes on without the image"
                );
                self.filters = None;
            }
        }
    }

    fn on_step_end(&mut self, e: &StepEnd) {
        if e.step.is_multiple_of(100) {
            self.scalars(e.step, &[("step/loss", e.loss), ("step/lr", e.lr)]);
        }
    }

    fn on_epoch_end(&mut self, e: &EpochEnd) {
        let mut values = vec![
            ("train/loss", e.train_loss as f32),
            ("train/accuracy", e.train_accuracy as f32),
            ("test/loss", e.test.loss as f32),
            ("test/accuracy", e.test.accuracy as f32),
            ("lr", e.lr),
        ];
        if let Some(ema) = &e.ema_test {
            values.push(("ema/test_loss", ema.loss as f32));
            values.push(("ema/test_accuracy", ema.accuracy as f32));
        }
        self.scalars(e.step, &values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_its_published_check_values() {
        // RFC 3720 B.4 and the CRC catalogue's check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
    }

    #[test]
    fn a_file_that_cannot_be_created_turns_the_board_off() {
        let dir = std::env::temp_dir()
            .join(format!("ventral-tb-{}", std::process::id()))
            .join("missing");
        let mut board = Board::open(&dir, Some(7));
        assert!(board.file.is_none());
        board.scalars(1, &[("a", 1.0)]);
        assert!(!dir.exists(), "nothing created");
    }

    #[test]
    fn a_resumed_board_starts_with_a_session_start_at_the_next_step() {
        let dir = std::env::temp_dir().join(format!("ventral-tb-resumed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("events.out.tfevents.1.old"), b"old").unwrap();
        drop(Board::open(&dir, Some(7)));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "a resumed run keeps the older file: {names:?}"
        );
        let new = names.iter().find(|n| !n.ends_with(".old")).unwrap();
        let bytes = std::fs::read(dir.join(new)).unwrap();
        // Record 1: file_version; record 2: step 8 (field 2 = 0x10 0x08), session_log START.
        let first_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let second = &bytes[16 + first_len + 12..bytes.len() - 4];
        assert_eq!(&second[9..], &[0x10, 0x08, 0x32, 0x02, 0x08, 0x01]);
        // A new run replaces the older files.
        drop(Board::open(&dir, None));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_scalar_event_is_the_protobuf_tensorflow_writes() {
        // Event{wall_time: 1.0, step: 300, summary{value{tag: "a", simple_value: 0.5}}}:
        // 09 <1.0 as f64 LE> 10 ac 02 2a 0a 0a 08 0a 01 61 15 <0.5 as f32 LE>.
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.0f64.to_le_bytes());
        expected.extend_from_slice(&[
            0x10, 0xAC, 0x02, 0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, b'a', 0x15,
        ]);
        expected.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(scalars_event(1.0, 300, &[("a", 0.5)]), expected);
    }
}
