//! Reading PNG and binary PNM (PGM `P5`, PPM `P6`) images (decoded by `ventral_nn::data`) and
//! turning them into a model's input: grey or RGB planes in `[0, 1]`, resized with a bilinear (triangle) filter.

use std::path::Path;

use anyhow::Result;
pub use ventral_nn::data::Image;
use ventral_nn::data::resize_plane as resize;

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

#[cfg(test)]
mod tests {
    use super::*;

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
