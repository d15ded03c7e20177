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

/// The largest centred part of `image` with the aspect ratio `width / height`: what an
/// image folder feeds a model trained on it (the centre square, for square inputs), before
/// the resize.
pub fn centre_crop(image: &Image, height: usize, width: usize) -> Image {
    let b = ventral_nn::data::CropBox::centre(image.height, image.width, height, width);
    let c = image.channels;
    let data = (b.top..b.top + b.height)
        .flat_map(|y| {
            let start = (y * image.width + b.left) * c;
            image.data[start..start + b.width * c].iter().copied()
        })
        .collect();
    Image {
        width: b.width,
        height: b.height,
        channels: c,
        data,
    }
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
    fn centre_crop_keeps_the_middle_of_a_wide_image() {
        // 2 rows x 4 columns, values = index; the centred 2x2 square is columns 1 and 2.
        let img = Image {
            width: 4,
            height: 2,
            channels: 1,
            data: (0..8).map(|i| i as f32).collect(),
        };
        let square = centre_crop(&img, 28, 28);
        assert_eq!((square.width, square.height), (2, 2));
        assert_eq!(square.data, vec![1.0, 2.0, 5.0, 6.0]);
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
