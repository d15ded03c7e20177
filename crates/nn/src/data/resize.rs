//! Resampling one image plane with Pillow's bilinear (triangle) filter: what `ventral
//! predict` does to an image of another size, and what an image folder's `--image-size` and
//! the random resized crop do to every sample.

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

/// Resizes one `h × w` plane (row-major) to `out_h × out_w` with a separable bilinear
/// filter, antialiased when shrinking (Pillow's `Image.resize(…, BILINEAR)`). The same size
/// is the identity, bit for bit.
///
/// # Panics
/// If `plane.len() != h · w`.
pub fn resize_plane(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    assert_eq!(plane.len(), h * w, "resize_plane: plane length for {h}x{w}");
    if (h, w) == (out_h, out_w) {
        return plane.to_vec();
    }
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

/// A rectangle of an image: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl CropBox {
    /// The largest centred box of the aspect ratio `out_w / out_h` in an `h × w` image: what
    /// is kept of an image resized (shorter side first) and centre-cropped to `out_h × out_w`.
    pub fn centre(h: usize, w: usize, out_h: usize, out_w: usize) -> Self {
        // Compare h·out_w with w·out_h to decide which side limits, in integers.
        let (height, width) = if h * out_w <= w * out_h {
            (h, (h * out_w / out_h).clamp(1, w))
        } else {
            ((w * out_h / out_w).clamp(1, h), w)
        };
        Self {
            top: (h - height) / 2,
            left: (w - width) / 2,
            height,
            width,
        }
    }
}

/// Crops `crop` out of every plane of a `[C, h, w]` image and resizes it to
/// `out_h × out_w` with [`resize_plane`], writing `C·out_h·out_w` values into `dst`.
///
/// # Panics
/// If `src` is not `C·h·w` long, `dst` is not `C·out_h·out_w` long, or the box leaves the
/// image.
pub fn crop_resize(
    src: &[f32],
    [channels, h, w]: [usize; 3],
    crop: CropBox,
    out_h: usize,
    out_w: usize,
    dst: &mut [f32],
) {
    assert_eq!(src.len(), channels * h * w, "crop_resize: source length");
    assert_eq!(
        dst.len(),
        channels * out_h * out_w,
        "crop_resize: destination length"
    );
    assert!(
        crop.top + crop.height <= h && crop.left + crop.width <= w,
        "crop_resize: {crop:?} leaves a {h}x{w} image"
    );
    let mut cropped = vec![0.0f32; crop.height * crop.width];
    for (plane, out) in src
        .chunks_exact(h * w)
        .zip(dst.chunks_exact_mut(out_h * out_w))
    {
        for (y, row) in cropped.chunks_exact_mut(crop.width).enumerate() {
            let start = (crop.top + y) * w + crop.left;
            row.copy_from_slice(&plane[start..start + crop.width]);
        }
        out.copy_from_slice(&resize_plane(
            &cropped,
            crop.height,
            crop.width,
            out_h,
            out_w,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_a_constant_image_and_the_same_size() {
        let plane = vec![0.25f32; 7 * 5];
        for (oh, ow) in [(28, 28), (3, 2), (7, 5)] {
            assert!(
                resize_plane(&plane, 7, 5, oh, ow)
                    .iter()
                    .all(|&v| (v - 0.25).abs() < 1e-6)
            );
        }
        let ramp: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(resize_plane(&ramp, 3, 4, 3, 4), ramp);
    }

    #[test]
    fn upsizing_interpolates_between_pixel_centres() {
        // [0, 1] to 4 samples: centres at input coordinates 0.25, 0.75, 1.25, 1.75, i.e.
        // 0.25 and 0.75 px on either side of the boundary; clamped at the edges:
        // 0, 0.25, 0.75, 1.
        let out = resize_plane(&[0.0, 1.0], 1, 2, 1, 4);
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
        let out = resize_plane(&[0.0, 0.0, 1.0, 1.0], 1, 4, 1, 2);
        assert!(
            (out[0] - 1.0 / 7.0).abs() < 1e-6 && (out[1] - 6.0 / 7.0).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn centre_box_keeps_the_middle_square() {
        // 4 rows x 8 columns to a square: the 4x4 box starting at column 2.
        let b = CropBox::centre(4, 8, 2, 2);
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 2,
                height: 4,
                width: 4
            }
        );
        // Cropping that box of a 1-channel ramp to its own size copies columns 2..6.
        let src: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let mut dst = vec![0.0; 16];
        crop_resize(&src, [1, 4, 8], b, 4, 4, &mut dst);
        assert_eq!(&dst[..4], &[2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&dst[12..], &[26.0, 27.0, 28.0, 29.0]);
    }
}
