//! Zero-padded copies of a group's input planes, read by the paths that index the input at
//! constant offsets (`flat.rs`, `direct.rs`, `channels.rs`).

use super::geometry::Conv2dGeometry;

/// How input planes sit in a padded buffer: each plane's pixels at their place in a
/// `height x width` grid (the zero padding around them), the next plane `len` floats on.
#[derive(Debug, Clone, Copy)]
pub(super) struct PaddedPlanes {
    /// Floats in a padded row: the input width plus both paddings.
    pub width: usize,
    /// Floats from one padded plane to the next: at least `height x width`, more where a
    /// reader runs past the grid.
    pub len: usize,
}

impl PaddedPlanes {
    /// The layout of `g`'s padded input planes, each at least `min_len` floats long.
    pub(super) fn new(g: &Conv2dGeometry, min_len: usize) -> PaddedPlanes {
        let (ph, pw) = g.params.padding;
        let width = g.in_w + 2 * pw;
        PaddedPlanes {
            width,
            len: ((g.in_h + 2 * ph) * width).max(min_len),
        }
    }

    /// Copies the input planes of image `n`, `group` into `out` (`len` floats each). Only the
    /// pixels are written: the caller zeroes `out` once and reuses it across images.
    pub(super) fn copy_group(
        &self,
        g: &Conv2dGeometry,
        x: &[f32],
        n: usize,
        group: usize,
        out: &mut [f32],
    ) {
        let (ph, pw) = g.params.padding;
        let (gi, plane) = (g.group_in(), g.plane());
        let first = (n * g.in_channels + group * gi) * plane;
        for (src, dst) in x[first..][..gi * plane]
            .chunks_exact(plane)
            .zip(out.chunks_exact_mut(self.len))
        {
            for (r, line) in src.chunks_exact(g.in_w).enumerate() {
                dst[(r + ph) * self.width + pw..][..g.in_w].copy_from_slice(line);
            }
        }
    }
}
