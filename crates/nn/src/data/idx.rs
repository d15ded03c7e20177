//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! Layout (big-endian): a 4-byte magic `00 00 TT NN` (TT = element type, 0x08 for unsigned
//! bytes; NN = number of dimensions), then NN 4-byte sizes, then the elements row-major.
//! Images files are `0x00000803` (count, rows, cols); labels files are `0x00000801` (count).

use std::path::Path;

use super::dataset::InMemoryDataset;
use super::error::{DataError, Result};
use super::input::Input;

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Pixel bytes are divided by this to scale them to `[0, 1]`.
pub(crate) const PIXEL_DIVISOR: f32 = 255.0;

/// The largest image side accepted. MNIST's is 28; anything past this is a corrupt header.
const MAX_SIDE: u64 = 1 << 14;

/// The content of an IDX images file: `count` grey images of `rows × cols` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count · rows · cols` pixels, image after image, row-major, 0 = background.
    pub pixels: Vec<u8>,
}

/// Reads an IDX images file (magic `0x00000803`), raw or gzip.
///
/// # Errors
/// [`DataError::Empty`], [`DataError::BadMagic`], [`DataError::BadHeader`] for a zero or
/// absurd dimension, [`DataError::Truncated`] / [`DataError::TrailingData`] when the pixels
/// do not exactly fill the file, plus the I/O and gzip errors of any reader. The header's
/// count is checked against the file before the pixel buffer is allocated.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    read_images(path, |_| Ok(()))
}

/// Reads an images file, calling `check_count` with the header's image count before any
/// pixel is read (so a header that disagrees with the labels stops the read there).
fn read_images(path: &Path, check_count: impl FnOnce(usize) -> Result<()>) -> Result<IdxImages> {
    let mut input = Input::open(path)?;
    read_magic(
        &mut input,
        IDX_IMAGES_MAGIC,
        "IDX images: unsigned bytes, 3 dimensions",
    )?;
    let dims = read_u32s::<3>(&mut input, "the IDX images header")?;
    let [count, rows, cols] = dims.map(u64::from);
    if count == 0 || rows == 0 || cols == 0 || rows > MAX_SIDE || cols > MAX_SIDE {
        return Err(bad_header(
            path,
            format!("{count} images of {rows}x{cols} (need count ≥ 1 and sides in 1..={MAX_SIDE})"),
        ));
    }
    // All three are < 2^32, so the product fits in u128 without overflow checks.
    let bytes = u128::from(count) * u128::from(rows) * u128::from(cols);
    let limit = crate::limits::Limits::current()?.decompressed_bytes;
    if bytes > u128::from(limit) {
        return Err(bad_header(
            path,
            format!(
                "{count} images of {rows}x{cols} = {bytes} bytes, more than the {limit}-byte limit (VENTRAL_MAX_DECOMPRESSED_BYTES raises it)"
            ),
        ));
    }
    check_count(count as usize)?;
    let pixels = input.read_exact(
        bytes as u64,
        &format!("{count} images of {rows}x{cols} pixels"),
    )?;
    input.expect_end()?;
    Ok(IdxImages {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        pixels,
    })
}

/// Reads an IDX labels file (magic `0x00000801`), raw or gzip, checking every label is below
/// `num_classes`.
///
/// # Errors
/// [`DataError::Empty`], [`DataError::BadMagic`], [`DataError::BadHeader`] for a zero count,
/// [`DataError::Truncated`] / [`DataError::TrailingData`] when the labels do not exactly
/// fill the file, [`DataError::LabelOutOfRange`], plus the I/O and gzip errors.
pub fn read_idx_labels(path: &Path, num_classes: usize) -> Result<Vec<u8>> {
    let mut input = Input::open(path)?;
    read_magic(
        &mut input,
        IDX_LABELS_MAGIC,
        "IDX labels: unsigned bytes, 1 dimension",
    )?;
    let [count] = read_u32s::<1>(&mut input, "the IDX labels header")?;
    if count == 0 {
        return Err(bad_header(path, "0 labels".to_string()));
    }
    let labels = input.read_exact(u64::from(count), &format!("{count} labels"))?;
    input.expect_end()?;
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| usize::from(**l) >= num_classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label: u64::from(label),
            num_classes,
        });
    }
    Ok(labels)
}

/// Reads an images file and its labels file into a dataset of `[1, rows, cols]` samples with
/// pixels scaled to `[0, 1]` (`byte / 255`, as torchvision's `ToTensor`). The pixels are
/// kept as bytes (see [`InMemoryDataset::from_u8`]): loading holds the decompressed pixels
/// once, and nothing else of their size. The labels file is read between the images
/// header and the pixels, and the header's count is checked against it before any pixel is
/// read, so an images file whose count disagrees costs its header, not its pixels.
///
/// # Errors
/// Those of [`read_idx_images`] and [`read_idx_labels`], and [`DataError::CountMismatch`]
/// when the two files hold different numbers of samples.
pub fn load_idx(
    images: &Path,
    labels: &Path,
    num_classes: usize,
    class_names: Option<Vec<String>>,
) -> Result<InMemoryDataset> {
    let mut label_file = Vec::new();
    let image_file = read_images(images, |image_count| {
        label_file = read_idx_labels(labels, num_classes)?;
        if image_count == label_file.len() {
            Ok(())
        } else {
            Err(DataError::CountMismatch {
                images: images.to_path_buf(),
                image_count,
                labels: labels.to_path_buf(),
                label_count: label_file.len(),
            })
        }
    })?;
    // The file's pixel bytes become the dataset's storage as they are: no copy, no `f32`s.
    InMemoryDataset::from_u8(
        [1, image_file.rows, image_file.cols],
        image_file.pixels,
        PIXEL_DIVISOR,
        label_file.into_iter().map(usize::from).collect(),
        num_classes,
        class_names,
    )
}

fn read_magic(input: &mut Input, expected: u32, format: &'static str) -> Result<()> {
    let [found] = read_u32s::<1>(input, "the IDX magic number")?;
    if found != expected {
        return Err(DataError::BadMagic {
            path: input.path().to_path_buf(),
            found,
            expected,
            format,
        });
    }
    Ok(())
}

fn read_u32s<const N: usize>(input: &mut Input, what: &str) -> Result<[u32; N]> {
    let bytes = input.read_exact(4 * N as u64, what)?;
    Ok(std::array::from_fn(|i| {
        u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    }))
}

fn bad_header(path: &Path, what: String) -> DataError {
    DataError::BadHeader {
        path: path.to_path_buf(),
        what,
    }
}
