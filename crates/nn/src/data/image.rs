//! PNG, JPEG and binary PNM (PGM `P5`, PPM `P6`) images, decoded to `f32` values in `[0, 1]`
//! ([`read_image`], for `ventral predict`) or to bytes ([`read_pixels`], for image folders).
//!
//! The image's dimensions are read from its header and checked against
//! [`Limits::image_pixels`] before any pixel buffer exists, so a small file declaring a huge
//! image (a 514 KB PNG of 23000×23000) is refused instead of decoded. Memory is then at most
//! the file, the decoder's 8-bit buffer (up to 4 bytes per pixel) and the `f32` values (up to
//! 3 per pixel): about 16 bytes per pixel. JPEG goes through the `image` crate's decoder
//! (`jpeg-decoder`), with its allocation limit set from the same pixel limit.

use std::io::Read;
use std::path::Path;

use super::error::{DataError, Result};
use crate::limits::{Limits, open_regular};

/// The PNG signature.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A decoded image: `channels` (1 grey, 3 RGB) interleaved values in `[0, 1]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// 1 or 3.
    pub channels: usize,
    /// `height · width · channels` values.
    pub data: Vec<f32>,
}

/// Reads a PNG (any colour type and bit depth; alpha composited over white) or a binary PGM
/// / PPM (maxval up to 65535), recognised by their first bytes.
///
/// # Errors
/// [`DataError::Io`] for an unreadable or non-regular file (a FIFO is refused before it is
/// opened), [`DataError::TooLarge`] for a file past [`Limits::decompressed_bytes`],
/// [`DataError::TooManyPixels`] for dimensions past [`Limits::image_pixels`],
/// [`DataError::BadImage`] for another format or a corrupt or truncated image.
pub fn read_image(path: &Path) -> Result<Image> {
    let limits = Limits::current()?;
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, len) = open_regular(path).map_err(io_err)?;
    if len > limits.decompressed_bytes {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit: limits.decompressed_bytes,
        });
    }
    let mut bytes = Vec::new();
    file.take(limits.decompressed_bytes)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    decode_image(path, &bytes, limits.image_pixels)
}

/// Decodes the bytes of a PNG or binary PGM/PPM file read from `path` (named in errors),
/// refusing images of more than `max_pixels` pixels before decoding them.
///
/// # Errors
/// As [`read_image`], without the I/O ones.
pub fn decode_image(path: &Path, bytes: &[u8], max_pixels: u64) -> Result<Image> {
    let bad = |what: String| DataError::BadImage {
        path: path.to_path_buf(),
        what,
    };
    let check = |width: u64, height: u64| {
        if width.saturating_mul(height) > max_pixels {
            Err(DataError::TooManyPixels {
                path: path.to_path_buf(),
                width,
                height,
                limit: max_pixels,
            })
        } else {
            Ok(())
        }
    };
    if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes, check).map_err(|e| match e {
            Decode::Bad(what) => bad(what),
            Decode::Limit(e) => e,
        })
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P6") {
        decode_pnm(bytes, check).map_err(|e| match e {
            Decode::Bad(what) => bad(what),
            Decode::Limit(e) => e,
        })
    } else if bytes.starts_with(JPEG_MAGIC) {
        let pixels = decode_pixels(path, bytes, max_pixels)?;
        Ok(Image {
            width: pixels.width,
            height: pixels.height,
            channels: pixels.channels,
            data: pixels.data.iter().map(|&b| f32::from(b) / 255.0).collect(),
        })
    } else {
        Err(bad("not a PNG, JPEG or binary PGM/PPM image".to_string()))
    }
}

/// The JPEG start-of-image marker and the first byte of the next marker.
const JPEG_MAGIC: &[u8] = b"\xff\xd8\xff";

/// A decoded 8-bit image: `channels` (1 grey, 3 RGB) interleaved bytes per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// 1 or 3.
    pub channels: usize,
    /// `height · width · channels` bytes.
    pub data: Vec<u8>,
}

/// The format of a PNG or JPEG file from its first bytes.
fn png_or_jpeg(path: &Path, head: &[u8]) -> Result<image::ImageFormat> {
    if head.starts_with(PNG_MAGIC) {
        Ok(image::ImageFormat::Png)
    } else if head.starts_with(JPEG_MAGIC) {
        Ok(image::ImageFormat::Jpeg)
    } else {
        Err(DataError::BadImage {
            path: path.to_path_buf(),
            what: "not a PNG or JPEG image".to_string(),
        })
    }
}

/// The `image` crate's limits for images of at most `max_pixels` pixels: room for the
/// decoded pixels at up to 8 bytes each (16-bit RGBA) and the decoder's working rows.
fn decoder_limits(max_pixels: u64) -> image::io::Limits {
    let mut limits = image::io::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(1 << 20));
    limits
}

/// Reads only the header of the PNG or JPEG file `path` and returns its width and height,
/// checked against [`Limits::image_pixels`]: how an image folder is scanned without
/// decoding every image.
///
/// # Errors
/// [`DataError::Io`] for an unreadable or non-regular file, [`DataError::BadImage`] for
/// another format or a header that cannot be read, [`DataError::TooManyPixels`] past the
/// limit.
pub fn read_image_size(path: &Path) -> Result<(usize, usize)> {
    let limits = Limits::current()?;
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, _) = open_regular(path).map_err(io_err)?;
    let mut reader = std::io::BufReader::new(file);
    let head = std::io::BufRead::fill_buf(&mut reader).map_err(io_err)?;
    let format = png_or_jpeg(path, head)?;
    let (w, h) = image::io::Reader::with_format(reader, format)
        .into_dimensions()
        .map_err(|e| DataError::BadImage {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    check_pixels(path, u64::from(w), u64::from(h), limits.image_pixels)?;
    Ok((w as usize, h as usize))
}

fn check_pixels(path: &Path, width: u64, height: u64, max_pixels: u64) -> Result<()> {
    if width.saturating_mul(height) > max_pixels {
        return Err(DataError::TooManyPixels {
            path: path.to_path_buf(),
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// Reads and decodes the PNG or JPEG file `path` to bytes: grey stays one channel, colour
/// becomes RGB, alpha is dropped (as PIL's `convert`, which torchvision's `ImageFolder`
/// uses), 16-bit samples keep their high byte. The file is bounded by
/// [`Limits::decompressed_bytes`] and the image by [`Limits::image_pixels`], checked from the
/// header before decoding.
///
/// # Errors
/// As [`read_image_size`], plus [`DataError::TooLarge`] for a file past the byte limit and
/// [`DataError::BadImage`] for a corrupt or truncated image.
pub fn read_pixels(path: &Path) -> Result<Pixels> {
    let limits = Limits::current()?;
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, len) = open_regular(path).map_err(io_err)?;
    if len > limits.decompressed_bytes {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit: limits.decompressed_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limits.decompressed_bytes)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    decode_pixels(path, &bytes, limits.image_pixels)
}

/// Decodes the bytes of a PNG or JPEG file read from `path` (named in errors) as
/// [`read_pixels`] does, refusing images of more than `max_pixels` pixels before decoding.
///
/// # Errors
/// As [`read_pixels`], without the I/O ones.
pub fn decode_pixels(path: &Path, bytes: &[u8], max_pixels: u64) -> Result<Pixels> {
    let bad = |e: image::ImageError| DataError::BadImage {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let format = png_or_jpeg(path, bytes)?;
    let reader = || image::io::Reader::with_format(std::io::Cursor::new(bytes), format);
    let (w, h) = reader().into_dimensions().map_err(bad)?;
    check_pixels(path, u64::from(w), u64::from(h), max_pixels)?;
    let mut decoder = reader();
    decoder.limits(decoder_limits(max_pixels));
    let decoded = decoder.decode().map_err(bad)?;
    let (channels, data) = if decoded.color().has_color() {
        (3, decoded.into_rgb8().into_raw())
    } else {
        (1, decoded.into_luma8().into_raw())
    };
    Ok(Pixels {
        width: w as usize,
        height: h as usize,
        channels,
        data,
    })
}

/// Why decoding stopped: the image is corrupt, or over a limit.
enum Decode {
    Bad(String),
    Limit(DataError),
}

impl From<png::DecodingError> for Decode {
    fn from(e: png::DecodingError) -> Self {
        Decode::Bad(format!("corrupt PNG: {e}"))
    }
}

fn decode_png(
    bytes: &[u8],
    check: impl Fn(u64, u64) -> Result<()>,
) -> std::result::Result<Image, Decode> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palettes and low bit depths become 8-bit grey / RGB(A); 16-bit samples keep their
    // high byte.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let (w, h) = reader.info().size();
    check(u64::from(w), u64::from(h)).map_err(Decode::Limit)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    let (width, height) = (info.width as usize, info.height as usize);
    let raw = &buf[..info.buffer_size()];
    let (stored, alpha) = match info.color_type {
        png::ColorType::Grayscale => (1, false),
        png::ColorType::GrayscaleAlpha => (2, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (4, true),
        png::ColorType::Indexed => {
            return Err(Decode::Bad(
                "an indexed PNG the decoder did not expand".to_string(),
            ));
        }
    };
    let channels = if stored >= 3 { 3 } else { 1 };
    let mut data = Vec::with_capacity(width * height * channels);
    for px in raw.chunks_exact(stored) {
        let a = if alpha {
            f32::from(px[stored - 1]) / 255.0
        } else {
            1.0
        };
        for &v in &px[..channels] {
            // Over a white background, as image viewers show transparency.
            data.push(f32::from(v) / 255.0 * a + (1.0 - a));
        }
    }
    if data.len() != width * height * channels {
        return Err(Decode::Bad(format!(
            "{width}x{height} pixels, but {} values decoded",
            data.len()
        )));
    }
    Ok(Image {
        width,
        height,
        channels,
        data,
    })
}

/// Binary PGM (`P5`) or PPM (`P6`): magic, width, height, maxval (whitespace-separated, `#`
/// comments allowed), one whitespace byte, then the samples (two bytes, big-endian, when
/// maxval > 255).
fn decode_pnm(
    bytes: &[u8],
    check: impl Fn(u64, u64) -> Result<()>,
) -> std::result::Result<Image, Decode> {
    let channels = if bytes[1] == b'5' { 1 } else { 3 };
    let mut pos = 2;
    let mut fields = [0usize; 3];
    for field in &mut fields {
        loop {
            match bytes.get(pos) {
                Some(b'#') => {
                    while bytes.get(pos).is_some_and(|&b| b != b'\n') {
                        pos += 1;
                    }
                }
                Some(b) if b.is_ascii_whitespace() => pos += 1,
                _ => break,
            }
        }
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        // Only ASCII digits were taken, so the slice is UTF-8.
        let digits = std::str::from_utf8(&bytes[start..pos]).unwrap_or("");
        *field = digits.parse().map_err(|_| {
            Decode::Bad("bad header: expected width, height and maxval".to_string())
        })?;
    }
    let [width, height, maxval] = fields;
    if width == 0 || height == 0 || width > 1 << 15 || height > 1 << 15 {
        return Err(Decode::Bad(format!("bad header: size {width}x{height}")));
    }
    check(width as u64, height as u64).map_err(Decode::Limit)?;
    if maxval == 0 || maxval > 65535 {
        return Err(Decode::Bad(format!(
            "bad header: maxval {maxval} (need 1..=65535)"
        )));
    }
    if !bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        return Err(Decode::Bad(
            "bad header: no whitespace before the pixels".to_string(),
        ));
    }
    pos += 1;
    let sample_bytes = if maxval > 255 { 2 } else { 1 };
    let count = width * height * channels;
    let body = &bytes[pos..];
    if body.len() < count * sample_bytes {
        return Err(Decode::Bad(format!(
            "truncated: {width}x{height} needs {} bytes of pixels, the file has {}",
            count * sample_bytes,
            body.len()
        )));
    }
    let max = maxval as f32;
    let data = body[..count * sample_bytes]
        .chunks_exact(sample_bytes)
        .map(|s| {
            let v = if sample_bytes == 2 {
                u16::from_be_bytes([s[0], s[1]])
            } else {
                u16::from(s[0])
            };
            (f32::from(v) / max).min(1.0)
        })
        .collect();
    Ok(Image {
        width,
        height,
        channels,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pnm(bytes: &[u8]) -> Result<Image> {
        decode_image(Path::new("x.pgm"), bytes, 1 << 20)
    }

    #[test]
    fn reads_pgm_with_comments_and_16_bit_samples() {
        let img = pnm(b"P5\n# a comment\n2 1\n255\n\x00\xff").unwrap();
        assert_eq!((img.width, img.height, img.channels), (2, 1, 1));
        assert_eq!(img.data, vec![0.0, 1.0]);
        let wide = pnm(b"P5 1 1 1000 \x01\xf4").unwrap();
        assert_eq!(wide.data, vec![0.5]);
        let truncated = pnm(b"P5 2 2 255 \x00").unwrap_err().to_string();
        assert_eq!(
            truncated,
            "x.pgm: corrupt image: truncated: 2x2 needs 4 bytes of pixels, the file has 1"
        );
        let garbled = pnm(b"P5 2 x 255 \x00").unwrap_err().to_string();
        assert_eq!(
            garbled,
            "x.pgm: corrupt image: bad header: expected width, height and maxval"
        );
    }

    #[test]
    fn pixel_limit_is_checked_before_the_pixels() {
        // 2000x2000 declared, no pixels at all: refused for its size, not its truncation.
        let err = decode_image(Path::new("big.pgm"), b"P5 2000 2000 255 ", 1 << 20)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "big.pgm: 2000x2000 = 4000000 pixels, more than the limit of 1048576 (VENTRAL_MAX_IMAGE_PIXELS raises it)"
        );
    }
}
