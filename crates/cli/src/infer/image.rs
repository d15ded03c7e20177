//! Reading PNG and binary PNM (PGM `P5`, PPM `P6`) images (decoded by `ventral_nn::data`) and
//! turning them into a model's input: grey or RGB planes in `[0, 1]`, resized with a bilinear (triangle) filter.

use std::path::Path;

use anyhow::Result;
pub use ventral_nn::data::Image;

/// Reads a PNG or binary PGM / PPM image ([`ventral_nn::data::read_image`]: its dimensions
/// are checked against `VENTRAL_MAX_IMAGE_PIXELS` before it is decoded).
///
/// # Errors
/// An unreadable or non-regular file, another format, a corrupt or truncated image, or one
/// with more pixels than the limit; the message names the file.
pub fn read(path: &Path) -> Result<Image> {
    Ok(ventral_nn::data::read_image(path)?)
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
