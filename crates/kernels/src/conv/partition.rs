//! How a convolution's work is cut: tiles of output positions for the im2col paths, pieces
//! of an image for the implicit forward product, blocks of the weight gradient's reduction,
//! and the channel and kernel tap of each lowered row. Every cut depends on the geometry
//! only, never on the thread count, so results are bit-identical at any thread count.

use super::lowered_panels::ROW_CHUNK;
use super::{COL_BUDGET, Conv2d};

/// A tile of output positions: `images` whole consecutive images starting at `image`, or
/// positions `p0..p0 + cols` of the single image `image`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tile {
    pub(super) image: usize,
    pub(super) images: usize,
    pub(super) p0: usize,
    pub(super) cols: usize,
}

impl Tile {
    /// Columns of the tile's lowered matrix: `images * cols`.
    pub(super) fn width(&self) -> usize {
        self.images * self.cols
    }
}

impl Conv2d {
    /// The tiles of output positions, in order: whole images when `COL_BUDGET` holds at least
    /// one image's lowered columns, else column ranges of one image.
    pub(super) fn tiles(&self) -> Vec<Tile> {
        self.tiles_within(COL_BUDGET)
    }

    /// [`Conv2d::tiles`] for tiles of at most `budget` lowered floats.
    pub(super) fn tiles_within(&self, budget: usize) -> Vec<Tile> {
        let g = &self.geometry;
        let positions = g.positions();
        let budget_cols = (budget / g.col_rows().max(1)).max(1);
        let mut tiles = Vec::new();
        if positions <= budget_cols {
            let per_tile = (budget_cols / positions.max(1)).max(1);
            let mut image = 0;
            while image < g.batch {
                let images = per_tile.min(g.batch - image);
                tiles.push(Tile {
                    image,
                    images,
                    p0: 0,
                    cols: positions,
                });
                image += images;
            }
        } else {
            // Equal-sized ranges, so no tile is a sliver, of whole output rows where one fits.
            let cols = if g.out_w <= budget_cols {
                let pieces = g.out_h.div_ceil(budget_cols / g.out_w);
                g.out_h.div_ceil(pieces) * g.out_w
            } else {
                positions.div_ceil(positions.div_ceil(budget_cols))
            };
            for image in 0..g.batch {
                for p0 in (0..positions).step_by(cols) {
                    tiles.push(Tile {
                        image,
                        images: 1,
                        p0,
                        cols: cols.min(positions - p0),
                    });
                }
            }
        }
        tiles
    }

    /// Ranges `(p0, cols)` of one image's output positions that the implicit forward product
    /// lowers and packs at a time, covering the image: whole output rows where they fit (so
    /// lowering copies row segments), each packed block (up to 256 lowered rows deep) about
    /// 512 KiB, so it stays in L2 while every micro-tile of the output reads it.
    pub(super) fn position_pieces(&self, depth: usize) -> Vec<(usize, usize)> {
        const PIECE_FLOATS: usize = 1 << 17;
        let g = &self.geometry;
        let (positions, out_w) = (g.positions(), g.out_w);
        let max_cols = (PIECE_FLOATS / depth.clamp(1, 256)).clamp(64, ROW_CHUNK);
        if out_w <= max_cols {
            let pieces = g.out_h.div_ceil(max_cols / out_w);
            let rows = g.out_h.div_ceil(pieces);
            (0..g.out_h)
                .step_by(rows)
                .map(|r0| (r0 * out_w, rows.min(g.out_h - r0) * out_w))
                .collect()
        } else {
            let pieces = positions.div_ceil(max_cols);
            let cols = positions.div_ceil(pieces).div_ceil(16) * 16;
            (0..positions)
                .step_by(cols)
                .map(|p0| (p0, cols.min(positions - p0)))
                .collect()
        }
    }

    /// The channel (within its group) and kernel tap `(ki, kj)` of lowered row `r`.
    pub(super) fn tap(&self, r: usize) -> (usize, usize, usize) {
        let g = &self.geometry;
        let taps = g.kernel_h * g.kernel_w;
        (r / taps, (r % taps) / g.kernel_w, r % g.kernel_w)
    }

    /// Ranges `(p0, len)` of one image's output positions, at most 256 long, that the weight
    /// gradient reduces over one block at a time: whole output rows where they fit.
    pub(super) fn position_blocks(&self) -> Vec<(usize, usize)> {
        const DEPTH: usize = 256;
        let g = &self.geometry;
        let (positions, out_w) = (g.positions(), g.out_w);
        let (step, total) = if out_w <= DEPTH {
            let pieces = g.out_h.div_ceil(DEPTH / out_w);
            (g.out_h.div_ceil(pieces.max(1)) * out_w, positions)
        } else {
            (positions.div_ceil(positions.div_ceil(DEPTH)), positions)
        };
        (0..total)
            .step_by(step.max(1))
            .map(|p0| (p0, step.min(total - p0)))
            .collect()
    }
}

/// Adds `partials` to `out` one after the other: the fixed segments of a reduction, summed
/// the same way whatever thread computed each.
pub(super) fn add_in_order<'a>(out: &mut [f32], partials: impl IntoIterator<Item = &'a [f32]>) {
    for partial in partials {
        for (o, p) in out.iter_mut().zip(partial) {
            *o += p;
        }
    }
}
