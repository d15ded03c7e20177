//! Reading PNG and binary PNM (PGM `P5`, PPM `P6`) images and turning them into a model's
//! input: grey or RGB planes in `[0, 1]`, resized with a bilinear (triangle) filter.

use std::path::Path;

use anyhow::{Context, Result, bail};

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
/// / PPM, recognised by their first bytes.
///
/// # Errors
/// An unreadable file, another format, a corrupt or truncated image.
pub fn read(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let image = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(&bytes)
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P6") {
        decode_pnm(&bytes)
    } else {
        bail!("{}: not a PNG or binary PGM/PPM image", path.display())
    };
    image.with_context(|| format!("{}: corrupt image", path.display()))
}

fn decode_png(bytes: &[u8]) -> Result<Image> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palettes and low bit depths become 8-bit grey / RGB(A); 16-bit samples keep their
    // high byte.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    let (width, height) = (info.width as usize, info.height as usize);
    let raw = &buf[..info.buffer_size()];
    let (stored, alpha) = match info.color_type {
        png::ColorType::Grayscale => (1, false),
        png::ColorType::GrayscaleAlpha => (2, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (4, true),
        png::ColorType::Indexed => bail!("an indexed PNG the decoder did not expand"),
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
        bail!("{width}x{height} pixels, but {} values decoded", data.len());
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
fn decode_pnm(bytes: &[u8]) -> Result<Image> {
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
        *field = std::str::from_utf8(&bytes[start..pos])?
            .parse()
            .context("bad header: expected width, height and maxval")?;
    }
    let [width, height, maxval] = fields;
    if width == 0 || height == 0 || width > 1 << 15 || height > 1 << 15 {
        bail!("bad header: size {width}x{height}");
    }
    if maxval == 0 || maxval > 65535 {
        bail!("bad header: maxval {maxval} (need 1..=65535)");
    }
    if !bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        bail!("bad header: no whitespace before the pixels");
    }
    pos += 1;
    let sample_bytes = if maxval > 255 { 2 } else { 1 };
    let count = width * height * channels;
    let body = &bytes[pos..];
    if body.len() < count * sample_bytes {
        bail!(
            "truncated: {width}x{height} needs {} bytes of pixels, the file has {}",
            count * sample_bytes,
            body.len()
        );
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

/// The image as `channels` planes of `height × width` (CHW): grey as ITU-R BT.601 luma
/// (`0.299 R + 0.587 G + 0.114 B`, PIL's "L"), grey copied to every plane of an RGB model,
/// each plane resized with [`resize`].
pub fn to_planes(image: &Image, channels: usize, height: usize, width: usize) -> Vec<f32> {
    let plane = |c: usize| -> Vec<f32> {
        let px = image.data.chunks_exact(image.channels);
        match (image.channels, channels) {
            (3, 1) => px
                .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
                .collect(),
            (3, _) => px.map(|p| p[c.min(2)]).collect(),
            _ => px.map(|p| p[0]).collect(),
        }
    };
    (0..channels)
        .flat_map(|c| resize(&plane(c), image.height, image.width, height, width))
        .collect()
}

/// For each output index of an axis of `n_in` → `n_out` samples: the first input index and
/// the normalised weights of the triangle filter (half-pixel centres; the filter widens by
/// the shrink factor when downsizing, as Pillow's bilinear resize does, so every input pixel
/// contributes).
fn weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f64 / n_out as f64;
    let support = scale.max(1.0);
    (0..n_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0)) as usize;
            let hi = ((centre + support).ceil() as usize).min(n_in);
            let mut w: Vec<f32> = (lo..hi)
                .map(|i| (1.0 - ((i as f64 + 0.5 - centre) / support).abs()).max(0.0) as f32)
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|x| *x /= sum);
            }
            (lo, w)
        })
        .collect()
}

/// Resizes one `h × w` plane to `out_h × out_w` with a separable bilinear filter.
pub fn resize(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let (wx, wy) = (weights(w, out_w), weights(h, out_h));
    let mut rows = vec![0.0f32; h * out_w];
    for y in 0..h {
        let src = &plane[y * w..(y + 1) * w];
        for (x, (lo, ws)) in wx.iter().enumerate() {
            rows[y * out_w + x] = ws.iter().zip(&src[*lo..]).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0.0f32; out_h * out_w];
    for (y, (lo, ws)) in wy.iter().enumerate() {
        for x in 0..out_w {
            out[y * out_w + x] = ws
                .iter()
                .enumerate()
                .map(|(k, a)| a * rows[(lo + k) * out_w + x])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_a_constant_image_and_the_same_size() {
        let plane = vec![0.25f32; 7 * 5];
        for (oh, ow) in [(28, 28), (3, 2), (7, 5)] {
            assert!(
                resize(&plane, 7, 5, oh, ow)
                    .iter()
                    .all(|&v| (v - 0.25).abs() < 1e-6)
            );
        }
        let ramp: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(resize(&ramp, 3, 4, 3, 4), ramp);
    }

    #[test]
    fn upsizing_interpolates_between_pixel_centres() {
        // [0, 1] to 4 samples: centres at input coordinates 0.25, 0.75, 1.25, 1.75, i.e.
        // 0.25 and 0.75 px on either side of the boundary; clamped at the edges:
        // 0, 0.25, 0.75, 1.
        let out = resize(&[0.0, 1.0], 1, 2, 1, 4);
        let want = [0.0, 0.25, 0.75, 1.0];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn downsizing_by_two_widens_the_filter() {
        // Shrink factor 2: the triangle spans ±2 input pixels around the output centre
        // (input coordinate 1 for output 0): inputs 0, 1, 2 weigh 0.75, 0.75, 0.25, i.e.
        // 3/7, 3/7, 1/7 after normalising. [0, 0, 1, 1] -> [1/7, 6/7].
        let out = resize(&[0.0, 0.0, 1.0, 1.0], 1, 4, 1, 2);
        assert!(
            (out[0] - 1.0 / 7.0).abs() < 1e-6 && (out[1] - 6.0 / 7.0).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn reads_pgm_with_comments_and_16_bit_samples() {
        let img = decode_pnm(b"P5\n# a comment\n2 1\n255\n\x00\xff").unwrap();
        assert_eq!((img.width, img.height, img.channels), (2, 1, 1));
        assert_eq!(img.data, vec![0.0, 1.0]);
        let wide = decode_pnm(b"P5 1 1 1000 \x01\xf4").unwrap();
        assert_eq!(wide.data, vec![0.5]);
        let truncated = decode_pnm(b"P5 2 2 255 \x00").unwrap_err().to_string();
        assert_eq!(
            truncated,
            "truncated: 2x2 needs 4 bytes of pixels, the file has 1"
        );
        let garbled = decode_pnm(b"P5 2 x 255 \x00").unwrap_err();
        assert!(format!("{garbled:#}").contains("bad header"), "{garbled:#}");
    }

    #[test]
    fn luma_weights_follow_bt601() {
        let img = Image {
            width: 1,
            height: 1,
            channels: 3,
            data: vec![1.0, 0.0, 0.0],
        };
        assert!((to_planes(&img, 1, 1, 1)[0] - 0.299).abs() < 1e-6);
        assert_eq!(to_planes(&img, 3, 1, 1), vec![1.0, 0.0, 0.0]);
    }
}
