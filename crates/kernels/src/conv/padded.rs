//! Zero-padded copies of a group's input planes, read by the paths that index the input at
//! constant offsets (`flat.rs`, `direct.rs`, `channels.rs`), and the per-thread scratch and
//! unit loop of the direct forward paths (`channels_forward.rs`, `flat_direct.rs`).

use rayon::prelude::*;

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

/// A thread's scratch on the direct forward paths (`channels_forward.rs`, `flat_direct.rs`),
/// which cut the output into units of some output channels of one group of one image: the
/// padded planes of the (image, group) it holds, copied only when a unit of another one
/// comes, and a buffer the unit stages its output in.
pub(super) struct GroupScratch {
    padded: Vec<f32>,
    held: Option<(usize, usize)>,
    staging: Vec<f32>,
}

impl GroupScratch {
    /// Scratch for `planes` of `channels` input channels (zeroed once; only pixels are ever
    /// written, so the padding stays zero).
    pub(super) fn new(planes: &PaddedPlanes, channels: usize) -> GroupScratch {
        GroupScratch {
            padded: vec![0.0; channels * planes.len],
            held: None,
            staging: Vec::new(),
        }
    }

    /// The padded planes of image `n`, `group` (copied unless already held) and the staging
    /// buffer, cleared to `staging_len` floats' worth of capacity.
    pub(super) fn planes(
        &mut self,
        planes: &PaddedPlanes,
        (g, x): (&Conv2dGeometry, &[f32]),
        (n, group): (usize, usize),
        staging_len: usize,
    ) -> (&[f32], &mut [f32]) {
        if self.held != Some((n, group)) {
            planes.copy_group(g, x, n, group, &mut self.padded);
            self.held = Some((n, group));
        }
        self.staging.resize(staging_len, 0.0);
        (&self.padded, &mut self.staging[..staging_len])
    }
}

/// Unit `index` of a forward pass cut into `chunks` units of output channels per group:
/// `(image, group, chunk)`.
pub(super) fn unit_of(index: usize, groups: usize, chunks: usize) -> (usize, usize, usize) {
    (
        index / (groups * chunks),
        index / chunks % groups,
        index % chunks,
    )
}

/// Runs `unit` on every `unit_len`-float run of `y` with its index, side by side when
/// `parallel` and there is more than one, each thread with its own scratch.
pub(super) fn for_each_unit(
    y: &mut [f32],
    unit_len: usize,
    parallel: bool,
    scratch: impl Fn() -> GroupScratch + Sync + Send,
    unit: impl Fn(&mut GroupScratch, (usize, &mut [f32])) + Sync + Send,
) {
    let unit_len = unit_len.max(1);
    if parallel && y.len() > unit_len {
        y.par_chunks_mut(unit_len)
            .enumerate()
            .for_each_init(scratch, unit);
    } else {
        let mut held = scratch();
        y.chunks_mut(unit_len)
            .enumerate()
            .for_each(|item| unit(&mut held, item));
    }
}
