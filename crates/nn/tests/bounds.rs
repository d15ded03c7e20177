//! The readers' memory bounds (`ventral_nn::limits`), each measured with a counting
//! allocator on the kind of file issue #18 found taking gigabytes: a CSV gzip bomb, a CSV
//! with one huge class label, an IDX gzip bomb under the size cap, a large (sparse)
//! safetensors file, an image declaring 23000x23000 pixels, and FIFOs given as files.

use std::alloc::System;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use ventral_kernels::alloc_count::CountingAllocator;
use ventral_nn::checkpoint::{self, CheckpointError};
use ventral_nn::data::{
    DataError, DataLoader, Dataset, load_idx, read_csv, read_digits_csv, read_image,
};
use ventral_nn::limits::Limits;
use ventral_nn::metrics::Confusion;

#[global_allocator]
static ALLOC: CountingAllocator<System> = CountingAllocator::new(System);

/// The allocator's counters are process-wide: every test holds this for its whole run, so
/// no other test allocates during a measurement.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and returns its result and the most bytes it had allocated at once.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOC.reset_peak();
    let r = f();
    (r, ALLOC.peak() - before)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-bounds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip_to(path: &Path, chunks: impl Iterator<Item = Vec<u8>>) {
    let mut gz = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    for chunk in chunks {
        gz.write_all(&chunk).unwrap();
    }
    gz.finish().unwrap();
}

const MIB: usize = 1 << 20;

#[test]
fn a_gzipped_csv_takes_memory_in_proportion_to_its_rows_and_stops_at_the_limit() {
    let _serial = serial();
    let dir = scratch("csv-bomb");
    // 16 MiB of "1,0\n": 4 Mi rows of one feature and a class. Read whole and split into
    // per-row vectors (as before the fix) this took about 12 bytes per byte of text; read
    // line by line it is 4 bytes per f32 and 8 per label for each 4-byte row, 3 per byte,
    // at most twice that while the vectors grow.
    let text_bytes = 16 * MIB;
    let path = dir.join("rows.csv.gz");
    gzip_to(&path, (0..16).map(|_| b"1,0\n".repeat(MIB / 4)));
    let (ds, peak) = peak_of(|| read_csv(&path).unwrap());
    println!("{text_bytes} bytes of CSV text: peak {peak} bytes");
    assert_eq!(ds.len(), text_bytes / 4);
    assert!(
        peak <= 6 * text_bytes,
        "{peak} bytes for {text_bytes} bytes of text"
    );
    drop(ds);
    // Past the decompressed limit, reading stops there: the rows read so far are all it held.
    let small = Limits {
        decompressed_bytes: 4 * MIB as u64,
        ..Limits::DEFAULT
    };
    let (err, peak) = peak_of(|| small.scoped(|| read_csv(&path).unwrap_err()));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: larger than the 4194304-byte limit for a dataset file after decompression (VENTRAL_MAX_DECOMPRESSED_BYTES raises it)",
            path.display()
        )
    );
    assert!(peak <= 6 * 4 * MIB, "{peak} bytes");
}

#[test]
fn csv_classes_are_bounded_and_a_confusion_matrix_grows_with_them_not_their_square() {
    let _serial = serial();
    let dir = scratch("csv-classes");
    // Issue #18's 1.7 KB file: a few rows and one label 65535.
    let mut text: String = (0..100).map(|i| format!("{i},{}\n", i % 3)).collect();
    text.push_str("0.5,65535\n");
    let path = dir.join("huge-label.csv");
    std::fs::write(&path, &text).unwrap();
    let err = read_csv(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 101: class 65535 is out of range: integer classes must be below 10000 (VENTRAL_MAX_CLASSES raises it)",
            path.display()
        )
    );
    // Raised, it loads.
    let raised = Limits {
        classes: 70_000,
        ..Limits::DEFAULT
    };
    assert_eq!(
        raised.scoped(|| read_csv(&path)).unwrap().num_classes(),
        65_536
    );
    // Named classes count too: the fourth distinct name is one too many for 3.
    let names = dir.join("names.csv");
    std::fs::write(&names, "1,a\n2,b\n3,a\n4,c\n5,d\n").unwrap();
    let three = Limits {
        classes: 3,
        ..Limits::DEFAULT
    };
    let err = three.scoped(|| read_csv(&names)).unwrap_err();
    assert!(matches!(
        err,
        DataError::TooManyClasses {
            classes: 4,
            limit: 3,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 4 classes, more than the limit of 3 (VENTRAL_MAX_CLASSES raises it)",
            names.display()
        )
    );
    // An evaluation's confusion matrix over 65,536 classes: two vectors of 65,536 counts
    // and the cells seen, not 65,536² (34 GB).
    let (confusion, peak) = peak_of(|| {
        let mut c = Confusion::new(65_536);
        for i in 0..10_000 {
            c.add(i * 6 % 65_536, i % 7);
        }
        c
    });
    assert_eq!((confusion.total(0), confusion.count(6, 1)), (1, 1));
    assert!(peak < 4 * MIB, "{peak} bytes");
}

/// An IDX file: magic, sizes, then `body`.
fn idx(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

#[test]
fn an_idx_gzip_bomb_is_refused_at_its_header() {
    let _serial = serial();
    let dir = scratch("idx-bomb");
    // 80,000 images of 28x28 = 62.7 MB of zeros, just under a 64 MiB limit, compressed to
    // a few hundred KB; the labels file holds 10 labels. Before the fix the pixels were read
    // whole before the counts were compared.
    let images = dir.join("train-images-idx3-ubyte.gz");
    let zeros = vec![0u8; 28 * 28 * 1000];
    gzip_to(
        &images,
        std::iter::once(idx(0x803, &[80_000, 28, 28])).chain((0..80).map(|_| zeros.clone())),
    );
    let labels = dir.join("train-labels-idx1-ubyte");
    let mut label_file = idx(0x801, &[10]);
    label_file.extend(0..10u8);
    std::fs::write(&labels, &label_file).unwrap();
    let limit = Limits {
        decompressed_bytes: 64 * MIB as u64,
        ..Limits::DEFAULT
    };
    let (err, peak) =
        peak_of(|| limit.scoped(|| load_idx(&images, &labels, 10, None).unwrap_err()));
    println!("IDX bomb of 62720000 bytes: peak {peak} bytes");
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds 80000 images but {} holds 10 labels",
            images.display(),
            labels.display()
        )
    );
    assert!(peak < MIB, "{peak} bytes");
    // Over the limit, the header alone is refused.
    let small = Limits {
        decompressed_bytes: 32 * MIB as u64,
        ..Limits::DEFAULT
    };
    let err = small.scoped(|| load_idx(&images, &labels, 10, None).unwrap_err());
    assert!(
        err.to_string().contains(
            "bad header: 80000 images of 28x28 = 62720000 bytes, more than the 33554432-byte limit (VENTRAL_MAX_DECOMPRESSED_BYTES raises it)"
        ),
        "{err}"
    );
}

/// A safetensors file holding one F32 tensor of `values` values, all zero, written sparse.
fn sparse_safetensors(path: &Path, values: u64) {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{values}],"data_offsets":[0,{}]}}}}"#,
        4 * values
    );
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(&(header.len() as u64).to_le_bytes())
        .unwrap();
    file.write_all(header.as_bytes()).unwrap();
    file.set_len(8 + header.len() as u64 + 4 * values).unwrap();
}

#[test]
fn safetensors_are_read_tensor_by_tensor_within_the_limit() {
    let _serial = serial();
    let dir = scratch("safetensors");
    let path = dir.join("big.safetensors");
    let values = 16 * MIB as u64; // 64 MiB of f32
    sparse_safetensors(&path, values);
    // Before the fix the file was read whole and then converted: twice the data.
    let (state, peak) = peak_of(|| checkpoint::load(&path).unwrap());
    println!("{} bytes of tensors: peak {peak} bytes", 4 * values);
    assert_eq!(state.numel() as u64, values);
    assert!(peak < 4 * values as usize + MIB, "{peak} bytes");
    drop(state);
    let small = Limits {
        checkpoint_bytes: 16 * MIB as u64,
        ..Limits::DEFAULT
    };
    let (err, peak) = peak_of(|| small.scoped(|| checkpoint::load(&path).unwrap_err()));
    assert!(matches!(err, CheckpointError::TooLarge { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 67108864 bytes of tensors, more than the 16777216-byte limit (VENTRAL_MAX_CHECKPOINT_BYTES raises it)",
            path.display()
        )
    );
    assert!(peak < MIB, "{peak} bytes");
    // A header that claims more data than the file holds is refused before any tensor.
    let short = dir.join("short.safetensors");
    sparse_safetensors(&short, 1000);
    let len = std::fs::metadata(&short).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let err = checkpoint::load(&short).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: not a valid checkpoint: the header describes 4000 bytes of tensor data, the file holds 3999",
            short.display()
        )
    );
}

/// A PNG whose header declares `width` x `height` grey pixels, followed by the first rows
/// only (a valid zlib stream, so the file is well formed up to its image data).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, deflate, adaptive, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    z.write_all(&vec![0u8; (width as usize + 1) * 4]).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn an_image_declaring_too_many_pixels_is_refused_before_decoding() {
    let _serial = serial();
    let dir = scratch("image");
    let path = dir.join("huge.png");
    std::fs::write(&path, png_declaring(23_000, 23_000)).unwrap();
    // Before the fix the decoder's 529 MB buffer was allocated first.
    let (err, peak) = peak_of(|| read_image(&path).unwrap_err());
    assert!(matches!(err, DataError::TooManyPixels { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 23000x23000 = 529000000 pixels, more than the limit of 16777216 (VENTRAL_MAX_IMAGE_PIXELS raises it)",
            path.display()
        )
    );
    assert!(peak < MIB, "{peak} bytes");
    let pgm = dir.join("huge.pgm");
    std::fs::write(&pgm, b"P5 20000 20000 255\n").unwrap();
    let err = read_image(&pgm).unwrap_err();
    assert!(matches!(err, DataError::TooManyPixels { .. }), "{err}");
}

/// Runs `f` on another thread and fails if it does not return within 10 s.
fn within_10s<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the reader blocked on a FIFO")
}

#[test]
fn a_fifo_is_refused_not_waited_on() {
    let _serial = serial();
    let dir = scratch("fifo");
    let fifo = dir.join("pipe.safetensors");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let f = fifo.clone();
    let err = within_10s(move || checkpoint::load(&f).unwrap_err().to_string());
    assert_eq!(
        err,
        format!(
            "{}: not a regular file (a FIFO, device or directory)",
            fifo.display()
        )
    );
    let f = fifo.clone();
    let err = within_10s(move || read_csv(&f).unwrap_err().to_string());
    assert!(err.contains("not a regular file"), "{err}");
    let f = fifo.clone();
    let err = within_10s(move || read_digits_csv(&f).unwrap_err().to_string());
    assert!(err.contains("not a regular file"), "{err}");
    let f = fifo.clone();
    let err = within_10s(move || read_image(&f).unwrap_err().to_string());
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_constant_csv_column_is_named_by_file_and_column() {
    let _serial = serial();
    let dir = scratch("constant");
    let path = dir.join("flat.csv");
    std::fs::write(&path, "width,height,class\n1,3,0\n2,3,1\n4,3,0\n").unwrap();
    let ds = read_csv(&path).unwrap();
    let (mean, std) = ds.channel_mean_std();
    let err = DataLoader::new(ds, 2)
        .unwrap()
        .normalize(mean, std)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: column 2 (\"height\") has the same value 3 in every sample (standard deviation 0), so it cannot be normalised; remove it",
            path.display()
        )
    );
    // Without a header, the column's number alone.
    let bare = dir.join("bare.csv");
    std::fs::write(&bare, "5,1,0\n5,2,1\n").unwrap();
    let ds = read_csv(&bare).unwrap();
    let (mean, std) = ds.channel_mean_std();
    let err = DataLoader::new(ds, 2)
        .unwrap()
        .normalize(mean, std)
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}: column 1 has the same value 5",
            bare.display()
        )),
        "{err}"
    );
}

#[test]
fn an_optimizer_state_cannot_size_its_buffers_from_a_huge_index() {
    use ventral_nn::checkpoint::{StateDict, TensorData, TensorRecord};
    use ventral_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
    let _serial = serial();
    // Found by tests/fuzz.rs: `momentum_buffer.4294967296` in a 700-byte training state
    // sized a vector of 2^32 buffers (103 GB) before the fix.
    let mut state = StateDict::new();
    state.insert(
        "step",
        TensorRecord::new("step", vec![], TensorData::I64(vec![1])).unwrap(),
    );
    let name = "momentum_buffer.4294967296";
    state.insert(
        name,
        TensorRecord::new(name, vec![3], TensorData::F32(vec![0.0; 3])).unwrap(),
    );
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    // The whole state is checked against the model's parameters first (a 3→1 linear layer:
    // two parameters), so the huge index is refused as a key the model does not have.
    let mut model =
        ventral_nn::layers::Linear::new(3, 1, true, &mut ventral_nn::Init::new(0)).unwrap();
    let (err, peak) = peak_of(|| sgd.load_state_dict(&mut model, &state).unwrap_err());
    assert!(
        err.to_string().contains("momentum_buffer.4294967296"),
        "{err}"
    );
    assert!(peak < MIB, "{peak} bytes");
    let mut renamed = StateDict::new();
    for (k, r) in state.iter() {
        renamed.insert(k.replace("momentum_buffer", "exp_avg"), r.clone());
    }
    let mut adam = Adam::new(AdamConfig::adam(0.001)).unwrap();
    let err = adam.load_state_dict(&mut model, &renamed).unwrap_err();
    assert!(err.to_string().contains("exp_avg.4294967296"), "{err}");
}
