//! A seeded mutation fuzzer for Ventral's file parsers that runs on stable Rust.
//!
//! Each [`Target`] names a parser (a function of a file path) and gives valid seed files.
//! Every input is a seed with one to four mutations stacked (bit flips, interesting bytes,
//! inserted, deleted and duplicated runs, truncation, 1/2/4/8-byte length fields set to edge
//! values in either byte order, ASCII numbers replaced by extreme ones, splices of two seeds,
//! and — for gzip seeds — mutating the decompressed bytes and compressing them again). The
//! input is written to a file and parsed, and the harness checks:
//!
//! - **no panic**: the parse runs under `catch_unwind`;
//! - **no hang**: a watchdog thread stops the process if one input takes more than
//!   [`HANG_SECONDS`];
//! - **memory within the bound**: the test binary's counting allocator measures each input's
//!   peak; above the target's stated bound the input counts as over-bound. A hard cap
//!   ([`HARD_CAP`]) makes any larger allocation fail, so a blow-up aborts the run instead of
//!   exhausting the machine;
//! - **errors name the file** (targets that promise it).
//!
//! Every failing input is written to `$CARGO_TARGET_TMPDIR/fuzz/<target>/` (`panic-N`,
//! `over-N`, `unnamed-N`); the input being parsed is always on disk as
//! `ventral-fuzz-<target>-<pid>/current` in `/dev/shm` (memory, when the system has it: a
//! disk file rewritten a million times is slow) or the temp folder, so an abort or a hang
//! leaves it behind.
//!
//! Parsers run under small [`Limits`] (4 MiB decompressed, 1 Mpx, 1,000 classes, 16 MiB of
//! tensors) so that the bounds are tight: a limit that were not enforced would show as an
//! input far over its bound.
//!
//! `VENTRAL_FUZZ_ITERS` sets the inputs per target (default [`CI_ITERS`]),
//! `VENTRAL_FUZZ_SEED` the random seed (default 1).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use ventral_kernels::alloc_count::CountingAllocator;
use ventral_nn::limits::Limits;

/// Inputs per target in CI (under a second per target in release; about 2 s in all).
pub const CI_ITERS: u64 = 20_000;
/// Seconds one input may take before the run counts it as a hang and stops.
pub const HANG_SECONDS: u64 = 10;
/// No allocation may take the process past this: 1 GiB.
pub const HARD_CAP: usize = 1 << 30;

/// The limits the parsers run under.
pub const FUZZ_LIMITS: Limits = Limits {
    decompressed_bytes: 4 << 20,
    image_pixels: 1 << 20,
    classes: 1000,
    checkpoint_bytes: 16 << 20,
};

/// One parser under test.
pub struct Target {
    /// Its name, for reports and the failure folder.
    pub name: &'static str,
    /// Valid files, `(file name, bytes)`; the name's extension is kept for mutants (so a
    /// `.gz` seed's mutants are named `.gz`).
    pub seeds: Vec<(&'static str, Vec<u8>)>,
    /// Parses the file; `Err` carries the error's message.
    pub parse: fn(&Path) -> Result<(), String>,
    /// The most bytes the parse may allocate beyond what was live before, for this input
    /// under [`FUZZ_LIMITS`].
    pub bound: fn(&[u8]) -> usize,
    /// Whether every error message must contain the file's path.
    pub errors_name_file: bool,
}

/// What a run saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Inputs parsed.
    pub inputs: u64,
    /// Inputs accepted.
    pub accepted: u64,
    /// Inputs refused with an error.
    pub refused: u64,
    /// Inputs that panicked.
    pub panics: u64,
    /// Inputs whose peak allocation exceeded the bound.
    pub over_bound: u64,
    /// Errors that did not name the file (for targets that promise it).
    pub unnamed: u64,
    /// The largest peak allocation of any input, in bytes.
    pub max_peak: usize,
}

/// A splitmix64 generator: small, seedable, good enough for choosing mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut MultiGzDecoder::new(bytes), &mut out).ok()?;
    Some(out)
}

const INTERESTING_U64: [u64; 12] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    1 << 40,
];

const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "65535",
    "4294967296",
    "99999999999999999999",
    "1e40",
    "-1e40",
    "nan",
    "inf",
    "",
    "23000",
    "1.5",
    "  7 ",
    "\u{0}",
];

/// One mutation of `data` in place; `other` is another seed to splice from.
fn mutate_once(data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let len = data.len();
    match rng.below(11) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = [0, 0xff, 0x7f, 0x80, b'\n', b',', b'#', b' '][rng.below(8)];
        }
        2 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let byte = (rng.next() & 0xff) as u8;
            data.splice(i..i, std::iter::repeat_n(byte, n));
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            data.drain(i..i + n);
        }
        4 if len > 0 => {
            data.truncate(rng.below(len));
        }
        5 if len > 0 => {
            // Duplicate a run.
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(256));
            let run: Vec<u8> = data[i..i + n].to_vec();
            let at = rng.below(data.len() + 1);
            data.splice(at..at, run);
        }
        6 | 7 if len > 0 => {
            // A length field: 1, 2, 4 or 8 bytes of an edge value (± 1), either byte order.
            let width = [1, 2, 4, 8][rng.below(4)];
            let i = rng.below(len);
            let mut v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
            v = match rng.below(3) {
                0 => v.wrapping_add(1),
                1 => v.wrapping_sub(1),
                _ => v,
            };
            let bytes = if rng.below(2) == 0 {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let src = if bytes[0] == 0 && width < 8 && rng.below(2) == 0 {
                &bytes[8 - width..]
            } else {
                &bytes[..width]
            };
            let end = (i + width).min(len);
            data[i..end].copy_from_slice(&src[..end - i]);
        }
        8 if len > 0 => {
            // Replace an ASCII number by an extreme one.
            let starts: Vec<usize> = (0..len)
                .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit()))
                .collect();
            if !starts.is_empty() {
                let s = starts[rng.below(starts.len())];
                let mut e = s;
                while e < len && (data[e].is_ascii_digit() || data[e] == b'.') {
                    e += 1;
                }
                let n = NUMBERS[rng.below(NUMBERS.len())];
                data.splice(s..e, n.bytes());
            }
        }
        9 if !other.is_empty() => {
            // Splice: a prefix of this one and a suffix of the other.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ => {
            if len > 0 {
                let i = rng.below(len);
                data[i] = (rng.next() & 0xff) as u8;
            }
        }
    }
}

/// A safetensors file's JSON header and data, when `data` looks like one.
fn split_safetensors(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(n).ok()?)?;
    (data.get(8) == Some(&b'{') && end <= data.len()).then(|| (&data[8..end], &data[end..]))
}

/// Recomputes the CRC of every whole chunk of a PNG, so that a mutant reaches the decoder
/// instead of failing its checksum.
fn fix_png_crcs(data: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= data.len()) else {
            break;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&data[at + 4..end]);
        data[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
}

/// A mutant of seed `data`: 1–4 stacked mutations. Half the time the mutations go inside
/// the format's envelope: for a gzip seed into the decompressed bytes (compressed again),
/// for a safetensors seed into its JSON header or its data (the length prefix rewritten),
/// for a PNG with its chunk CRCs recomputed afterwards.
pub fn mutate(data: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let rounds = 1 + rng.below(4);
    let inside = rng.below(2) == 0;
    if inside
        && data.starts_with(&[0x1f, 0x8b])
        && let Some(mut raw) = gunzip(data)
    {
        for _ in 0..rounds {
            mutate_once(&mut raw, other, rng);
        }
        return gzip(&raw);
    }
    if inside && let Some((header, tensors)) = split_safetensors(data) {
        let (mut header, mut tensors) = (header.to_vec(), tensors.to_vec());
        let other_header = split_safetensors(other).map_or(other, |(h, _)| h);
        for _ in 0..rounds {
            if rng.below(4) == 0 {
                mutate_once(&mut tensors, &[], rng);
            } else {
                mutate_once(&mut header, other_header, rng);
            }
        }
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&tensors);
        return out;
    }
    let mut out = data.to_vec();
    for _ in 0..rounds {
        mutate_once(&mut out, other, rng);
    }
    if inside && out.starts_with(b"\x89PNG") {
        fix_png_crcs(&mut out);
    }
    out
}

/// Serialises fuzz runs in one process (the allocator's counters are process-wide).
static RUNNING: Mutex<()> = Mutex::new(());

/// Inputs per target: `VENTRAL_FUZZ_ITERS`, default [`CI_ITERS`].
pub fn iterations() -> u64 {
    std::env::var("VENTRAL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_ITERS)
}

/// The random seed: `VENTRAL_FUZZ_SEED`, default 1.
pub fn fuzz_seed() -> u64 {
    std::env::var("VENTRAL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The folder for `target`'s failing inputs.
pub fn failure_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz")
        .join(target)
}

/// Runs `iters` mutants of `target`'s seeds (and the seeds themselves first) and reports.
///
/// # Panics
/// If a seed is refused (the seeds must be valid), or the process cannot write files.
pub fn run(
    target: &Target,
    alloc: &'static CountingAllocator<std::alloc::System>,
    iters: u64,
    seed: u64,
) -> Report {
    let _one_at_a_time = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = failure_dir(target.name);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &target.seeds {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).unwrap();
        if let Err(e) = (target.parse)(&path) {
            panic!("{}: seed {name} is refused: {e}", target.name);
        }
    }
    // The watchdog: `started` holds the start of the input in progress (ms since `epoch`,
    // 0 when idle).
    let epoch = Instant::now();
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let pid = std::process::id();
    let scratch = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
    .join(format!("ventral-fuzz-{}-{pid}", target.name));
    std::fs::create_dir_all(&scratch).unwrap();
    let current_name = |ext: &str| scratch.join(format!("current{ext}"));
    let watchdog = {
        let (started, done) = (Arc::clone(&started), Arc::clone(&done));
        let dir = scratch.clone();
        let name = target.name;
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let s = started.load(Ordering::SeqCst);
                let now = epoch.elapsed().as_millis() as u64;
                if s != 0 && now.saturating_sub(s) > HANG_SECONDS * 1000 {
                    eprintln!(
                        "fuzz {name}: an input has run for more than {HANG_SECONDS} s: see {}/current*",
                        dir.display()
                    );
                    std::process::exit(3);
                }
            }
        })
    };
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    alloc.set_limit(HARD_CAP);
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    for i in 0..iters {
        let (name, data) = &target.seeds[rng.below(target.seeds.len())];
        let other = &target.seeds[rng.below(target.seeds.len())].1;
        let input = mutate(data, other, &mut rng);
        let ext = name.find('.').map_or("", |k| &name[k..]);
        let path = current_name(ext);
        std::fs::write(&path, &input).unwrap();
        let save = |kind: &str| {
            let to = dir.join(format!("{kind}-{i}{ext}"));
            std::fs::write(&to, &input).unwrap();
            to
        };
        let before = alloc.reset_peak();
        started.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        let outcome = FUZZ_LIMITS.scoped(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.parse)(&path)))
        });
        started.store(0, Ordering::SeqCst);
        let used = alloc.peak().saturating_sub(before);
        report.inputs += 1;
        report.max_peak = report.max_peak.max(used);
        if used > (target.bound)(&input) {
            report.over_bound += 1;
            let to = save("over");
            eprintln!(
                "fuzz {}: {} bytes allocated for a {}-byte input: {}",
                target.name,
                used,
                input.len(),
                to.display()
            );
        }
        match outcome {
            Ok(Ok(())) => report.accepted += 1,
            Ok(Err(message)) => {
                report.refused += 1;
                if target.errors_name_file && !message.contains(path.to_str().unwrap()) {
                    report.unnamed += 1;
                    let to = save("unnamed");
                    eprintln!(
                        "fuzz {}: error without the file name: {message}: {}",
                        target.name,
                        to.display()
                    );
                }
            }
            Err(_) => {
                report.panics += 1;
                let to = save("panic");
                eprintln!("fuzz {}: panic: {}", target.name, to.display());
            }
        }
    }
    alloc.set_limit(usize::MAX);
    std::panic::set_hook(previous_hook);
    done.store(true, Ordering::SeqCst);
    watchdog.join().unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    report
}

/// Runs `target` for [`iterations`] inputs from [`fuzz_seed`], prints the report with the
/// wall time, and fails on any panic, over-bound input or unnamed error.
pub fn check(target: &Target, alloc: &'static CountingAllocator<std::alloc::System>) {
    let (iters, seed) = (iterations(), fuzz_seed());
    let start = Instant::now();
    let report = run(target, alloc, iters, seed);
    println!(
        "fuzz {}: {} inputs (seed {seed}) in {:.1} s: {} accepted, {} refused, {} panics, 0 hangs, {} over the memory bound, {} errors without the file name; largest peak {} bytes",
        target.name,
        report.inputs,
        start.elapsed().as_secs_f64(),
        report.accepted,
        report.refused,
        report.panics,
        report.over_bound,
        report.unnamed,
        report.max_peak
    );
    assert_eq!(
        (report.panics, report.over_bound, report.unnamed),
        (0, 0, 0),
        "fuzz {}: {report:?}; inputs in {}",
        target.name,
        failure_dir(target.name).display()
    );
}
