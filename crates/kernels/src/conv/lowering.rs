//! im2col and its adjoint col2im: the lowering of a convolution to a matrix product.
//!
//! For one input channel, the lowered matrix has `kernel_h * kernel_w` rows, one per kernel
//! tap `(ki, kj)`, and one column per output position `p = oh * out_w + ow`; entry
//! `[(ki, kj), p]` is the input pixel that tap meets at that position, or 0 in the padding.
//! These functions handle a contiguous range of output positions so a convolution can lower
//! a tile at a time and keep its buffer small.

use super::geometry::Conv2dGeometry;

/// For tap offset `off` (tap position minus padding) and output column `ow`, the input column
/// is `ow * stride + off`. Returns the range of `t` in `0..n` (output columns `ow0 + t`) whose
/// input column lies inside `0..width`.
fn valid_span(ow0: usize, n: usize, stride: usize, off: isize, width: usize) -> (usize, usize) {
    let first_in = |t: usize| (ow0 + t) as isize * stride as isize + off;
    // Smallest t with input column >= 0.
    let lo = if first_in(0) >= 0 {
        0
    } else {
        ((-first_in(0)) as usize).div_ceil(stride).min(n)
    };
    // Smallest t with input column >= width.
    let hi = if first_in(0) >= width as isize {
        0
    } else {
        ((width as isize - first_in(0)) as usize)
            .div_ceil(stride)
            .min(n)
    };
    (lo, hi.max(lo))
}

/// Walks output positions `p0..p0 + cols` row by row of an output image `out_w` wide, calling
/// `f(oh, ow0, j, n)` for each run of `n` positions starting at output `(oh, ow0)`, which land
/// in columns `j..j + n` of the lowered matrix.
fn for_each_run(
    out_w: usize,
    p0: usize,
    cols: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let (mut p, mut j) = (p0, 0);
    while j < cols {
        let (oh, ow0) = (p / out_w, p % out_w);
        let n = (out_w - ow0).min(cols - j);
        f(oh, ow0, j, n);
        j += n;
        p += n;
    }
}

/// A plane that lowered rows are read from: `in_h x in_w` floats, read at `stride` for an
/// output `out_w` wide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub in_h: usize,
    pub in_w: usize,
    pub out_w: usize,
    pub stride: (usize, usize),
}

impl Source {
    /// The input planes of a convolution.
    pub(crate) fn of(geo: &Conv2dGeometry) -> Source {
        Source {
            in_h: geo.in_h,
            in_w: geo.in_w,
            out_w: geo.out_w,
            stride: geo.params.stride,
        }
    }
}

/// `dst = src` for the short runs of a lowered row (an output row of a small image is often
/// 10 to 60 floats): fixed 8-float moves, the last one overlapping, instead of a `memcpy` call.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    const W: usize = 8;
    let n = dst.len();
    assert_eq!(n, src.len(), "copy_short: lengths differ");
    if n < W {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        return;
    }
    let mut i = 0;
    while i + W <= n {
        dst[i..i + W].copy_from_slice(&src[i..i + W]);
        i += W;
    }
    if i < n {
        dst[n - W..].copy_from_slice(&src[n - W..]);
    }
}

/// Writes one lowered row for output positions `p0..p0 + row.len()`: position `(oh, ow)`
/// reads `plane[oh * sh + row_off][ow * sw + col_off]`, or 0 outside the plane.
fn lower_row(
    src: Source,
    plane: &[f32],
    row_off: isize,
    col_off: isize,
    p0: usize,
    row: &mut [f32],
) {
    let (sh, sw) = src.stride;
    let out_w = src.out_w;
    let cols = row.len();
    if p0.is_multiple_of(out_w) && cols.is_multiple_of(out_w) {
        // Whole output rows: every run has the same valid span, computed once.
        let (lo, hi) = valid_span(0, out_w, sw, col_off, src.in_w);
        let start = (lo * sw) as isize + col_off;
        for (r, seg) in row.chunks_exact_mut(out_w).enumerate() {
            let ih = ((p0 / out_w + r) * sh) as isize + row_off;
            if ih < 0 || ih >= src.in_h as isize {
                seg.fill(0.0);
                continue;
            }
            seg[..lo].fill(0.0);
            seg[hi..].fill(0.0);
            if lo == hi {
                continue;
            }
            let from = &plane[ih as usize * src.in_w + start as usize..];
            if sw == 1 {
                for (v, s) in seg[lo..hi].iter_mut().zip(from) {
                    *v = *s;
                }
            } else {
                for (t, v) in seg[lo..hi].iter_mut().enumerate() {
                    *v = from[t * sw];
                }
            }
        }
        return;
    }
    for_each_run(out_w, p0, cols, |oh, ow0, j, n| {
        let seg = &mut row[j..j + n];
        let ih = (oh * sh) as isize + row_off;
        if ih < 0 || ih >= src.in_h as isize {
            seg.fill(0.0);
            return;
        }
        let from = &plane[ih as usize * src.in_w..][..src.in_w];
        let (lo, hi) = valid_span(ow0, n, sw, col_off, src.in_w);
        seg[..lo].fill(0.0);
        seg[hi..].fill(0.0);
        let start = ((ow0 + lo) * sw) as isize + col_off;
        if sw == 1 {
            let start = start as usize;
            seg[lo..hi].copy_from_slice(&from[start..start + (hi - lo)]);
        } else {
            for (t, v) in seg[lo..hi].iter_mut().enumerate() {
                *v = from[start as usize + t * sw];
            }
        }
    });
}

/// Writes the lowered row of tap `(ki, kj)` of one input channel plane for output positions
/// `p0..p0 + row.len()` into `row`.
pub(crate) fn im2col_row(
    geo: &Conv2dGeometry,
    plane: &[f32],
    ki: usize,
    kj: usize,
    p0: usize,
    row: &mut [f32],
) {
    let (ph, pw) = geo.params.padding;
    let (dh, dw) = geo.params.dilation;
    let row_off = (ki * dh) as isize - ph as isize;
    let col_off = (kj * dw) as isize - pw as isize;
    lower_row(Source::of(geo), plane, row_off, col_off, p0, row);
}

/// The input a block of whole output rows reaches, copied once with its zero padding and
/// split by column phase (for a horizontal stride `sw`, phase `b` holds columns `b, b + sw,
/// ...`): every lowered row of the block is then a copy of `out_w` contiguous floats per
/// output row, with no bounds to check. For output rows `oh0..oh1`, laid out
/// `[channel][phase][row][column]`.
pub(crate) struct Window {
    oh0: usize,
    /// Input row of the window's row 0 (negative in the top padding).
    row0: isize,
    rows: usize,
    /// Phase column of the window's column 0 (negative in the left padding).
    col0: isize,
    width: usize,
}

impl Window {
    /// The window of output rows `oh0..oh1` (at least one).
    pub(crate) fn new(geo: &Conv2dGeometry, oh0: usize, oh1: usize) -> Window {
        let (sh, sw) = geo.params.stride;
        let (ph, pw) = geo.params.padding;
        let (dh, dw) = geo.params.dilation;
        let col_first = -(pw as isize);
        let col_last = ((geo.kernel_w - 1) * dw) as isize - pw as isize;
        let col0 = col_first.div_euclid(sw as isize);
        let width = geo.out_w + (col_last.div_euclid(sw as isize) - col0) as usize;
        Window {
            oh0,
            row0: (oh0 * sh) as isize - ph as isize,
            rows: (oh1 - oh0 - 1) * sh + (geo.kernel_h - 1) * dh + 1,
            col0,
            width,
        }
    }

    /// Fills `buf` from `planes` (a group's input planes of one image, back to back).
    pub(crate) fn fill(&self, geo: &Conv2dGeometry, planes: &[f32], buf: &mut Vec<f32>) {
        let sw = geo.params.stride.1;
        let in_h = geo.in_h as isize;
        let plane_len = geo.in_h * geo.in_w;
        let channels = planes.len() / plane_len.max(1);
        buf.clear();
        buf.resize(channels * sw * self.rows * self.width, 0.0);
        for (c, out) in buf
            .chunks_exact_mut(sw * self.rows * self.width)
            .enumerate()
        {
            let plane = &planes[c * plane_len..][..plane_len];
            for (b, phase) in out.chunks_exact_mut(self.rows * self.width).enumerate() {
                let (start, lo, hi) = self.valid_columns(geo, b);
                for (r, dst) in phase.chunks_exact_mut(self.width).enumerate() {
                    let ih = self.row0 + r as isize;
                    if ih < 0 || ih >= in_h || lo == hi {
                        continue;
                    }
                    let src = &plane[ih as usize * geo.in_w..][..geo.in_w];
                    if sw == 1 {
                        dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                    } else {
                        for (t, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[start + t * sw];
                        }
                    }
                }
            }
        }
    }

    /// For phase `b`, the window columns `lo..hi` that hold input columns (the rest is
    /// padding) and `start`, the input column of window column `lo`; columns are `sw` apart.
    fn valid_columns(&self, geo: &Conv2dGeometry, b: usize) -> (usize, usize, usize) {
        let sw = geo.params.stride.1;
        let in_w = geo.in_w as isize;
        let first = self.col0 * sw as isize + b as isize;
        let lo = if first >= 0 {
            0
        } else {
            ((-first) as usize).div_ceil(sw)
        }
        .min(self.width);
        let hi = if first >= in_w {
            0
        } else {
            ((in_w - first) as usize).div_ceil(sw)
        }
        .clamp(lo, self.width);
        ((first + (lo * sw) as isize).max(0) as usize, lo, hi)
    }

    /// Lowered row of channel `c`'s tap `(ki, kj)` for positions `p0..p0 + row.len()`, whole
    /// output rows inside the window, read from `buf` as filled by [`Window::fill`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lower(
        &self,
        geo: &Conv2dGeometry,
        buf: &[f32],
        c: usize,
        ki: usize,
        kj: usize,
        p0: usize,
        row: &mut [f32],
    ) {
        let (sh, sw) = geo.params.stride;
        let (dh, dw) = geo.params.dilation;
        let out_w = geo.out_w;
        let d = (kj * dw) as isize - geo.params.padding.1 as isize;
        let (b, q) = (
            d.rem_euclid(sw as isize) as usize,
            d.div_euclid(sw as isize),
        );
        let phase = &buf[(c * sw + b) * self.rows * self.width..][..self.rows * self.width];
        let col = (q - self.col0) as usize;
        let first = p0 / out_w - self.oh0;
        for (r, dst) in row.chunks_exact_mut(out_w).enumerate() {
            let wr = (first + r) * sh + ki * dh;
            copy_short(dst, &phase[wr * self.width + col..][..out_w]);
        }
    }

    /// The adjoint of [`Window::lower`] for one channel: adds `row` into `acc`, the channel's
    /// part of a window buffer (`[phase][row][column]`, zeroed by the caller).
    pub(crate) fn unlower(
        &self,
        geo: &Conv2dGeometry,
        acc: &mut [f32],
        ki: usize,
        kj: usize,
        p0: usize,
        row: &[f32],
    ) {
        let (sh, sw) = geo.params.stride;
        let (dh, dw) = geo.params.dilation;
        let out_w = geo.out_w;
        let d = (kj * dw) as isize - geo.params.padding.1 as isize;
        let (b, q) = (
            d.rem_euclid(sw as isize) as usize,
            d.div_euclid(sw as isize),
        );
        let phase = &mut acc[b * self.rows * self.width..][..self.rows * self.width];
        let col = (q - self.col0) as usize;
        let first = p0 / out_w - self.oh0;
        for (r, src) in row.chunks_exact(out_w).enumerate() {
            let wr = (first + r) * sh + ki * dh;
            for (a, v) in phase[wr * self.width + col..][..out_w].iter_mut().zip(src) {
                *a += v;
            }
        }
    }

    /// Floats of one channel's part of a window buffer.
    pub(crate) fn channel_len(&self, geo: &Conv2dGeometry) -> usize {
        geo.params.stride.1 * self.rows * self.width
    }

    /// The adjoint of [`Window::fill`] for one channel: adds `acc` (the channel's part of a
    /// window buffer) onto its input `plane`, dropping the padding.
    pub(crate) fn merge(&self, geo: &Conv2dGeometry, acc: &[f32], plane: &mut [f32]) {
        let sw = geo.params.stride.1;
        for (b, phase) in acc.chunks_exact(self.rows * self.width).enumerate() {
            let (start, lo, hi) = self.valid_columns(geo, b);
            for (r, src) in phase.chunks_exact(self.width).enumerate() {
                let ih = self.row0 + r as isize;
                if ih < 0 || ih >= geo.in_h as isize || lo == hi {
                    continue;
                }
                let dst = &mut plane[ih as usize * geo.in_w..][..geo.in_w];
                if sw == 1 {
                    for (d, v) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                        *d += v;
                    }
                } else {
                    for (t, v) in src[lo..hi].iter().enumerate() {
                        dst[start + t * sw] += v;
                    }
                }
            }
        }
    }
}

/// The adjoint of [`lower_row`]: adds `row` (output positions `p0..p0 + row.len()`) back onto
/// the plane pixels it was read from, dropping the entries that came from outside the plane.
fn unlower_row(
    src: Source,
    plane: &mut [f32],
    row_off: isize,
    col_off: isize,
    p0: usize,
    row: &[f32],
) {
    let (sh, sw) = src.stride;
    let out_w = src.out_w;
    let cols = row.len();
    if p0.is_multiple_of(out_w) && cols.is_multiple_of(out_w) {
        // Whole output rows: every run has the same valid span, computed once.
        let (lo, hi) = valid_span(0, out_w, sw, col_off, src.in_w);
        let start = (lo * sw) as isize + col_off;
        for (r, seg) in row.chunks_exact(out_w).enumerate() {
            let ih = ((p0 / out_w + r) * sh) as isize + row_off;
            if ih < 0 || ih >= src.in_h as isize || lo == hi {
                continue;
            }
            let dst = &mut plane[ih as usize * src.in_w + start as usize..];
            if sw == 1 {
                for (d, v) in dst.iter_mut().zip(&seg[lo..hi]) {
                    *d += v;
                }
            } else {
                let dst = &mut dst[..(hi - lo - 1) * sw + 1];
                for (t, v) in seg[lo..hi].iter().enumerate() {
                    dst[t * sw] += v;
                }
            }
        }
        return;
    }
    for_each_run(out_w, p0, cols, |oh, ow0, j, n| {
        let ih = (oh * sh) as isize + row_off;
        if ih < 0 || ih >= src.in_h as isize {
            return;
        }
        let dst = &mut plane[ih as usize * src.in_w..][..src.in_w];
        let (lo, hi) = valid_span(ow0, n, sw, col_off, src.in_w);
        let start = ((ow0 + lo) * sw) as isize + col_off;
        let seg = &row[j + lo..j + hi];
        if sw == 1 {
            let start = start as usize;
            for (d, s) in dst[start..start + seg.len()].iter_mut().zip(seg) {
                *d += s;
            }
        } else {
            for (t, s) in seg.iter().enumerate() {
                dst[start as usize + t * sw] += s;
            }
        }
    });
}

/// The adjoint of lowering one channel (every [`im2col_row`] of its taps, rows `ld` apart in
/// `src`, output positions `p0..p0 + cols`): adds each lowered entry back onto the input pixel
/// it came from (entries from the padding are dropped). Whole output rows add into a
/// [`Window`] first (contiguous adds, no bounds) and add it back onto the plane once.
pub(crate) fn col2im_channel(
    geo: &Conv2dGeometry,
    src: &[f32],
    ld: usize,
    p0: usize,
    cols: usize,
    plane: &mut [f32],
) {
    let (ph, pw) = geo.params.padding;
    let (dh, dw) = geo.params.dilation;
    let taps = (0..geo.kernel_h).flat_map(|ki| (0..geo.kernel_w).map(move |kj| (ki, kj)));
    if !(p0.is_multiple_of(geo.out_w) && cols.is_multiple_of(geo.out_w)) || cols == 0 {
        for (t, (ki, kj)) in taps.enumerate() {
            let row = &src[t * ld..][..cols];
            let row_off = (ki * dh) as isize - ph as isize;
            let col_off = (kj * dw) as isize - pw as isize;
            unlower_row(Source::of(geo), plane, row_off, col_off, p0, row);
        }
        return;
    }
    // Whole output rows: add into a padded, phase-split window with plain adds, then add the
    // window back onto the plane once.
    let window = Window::new(geo, p0 / geo.out_w, (p0 + cols) / geo.out_w);
    let mut acc = vec![0.0; window.channel_len(geo)];
    for (t, (ki, kj)) in taps.enumerate() {
        window.unlower(geo, &mut acc, ki, kj, p0, &src[t * ld..][..cols]);
    }
    window.merge(geo, &acc, plane);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    #[test]
    fn valid_span_clips_both_edges() {
        // Width 5, stride 1, offset -1 (padding 1): output columns 0..7 read inputs -1..6,
        // of which inputs 0..5 are valid, i.e. t in 1..6.
        assert_eq!(valid_span(0, 7, 1, -1, 5), (1, 6));
        // Stride 2, offset -1: inputs -1, 1, 3, 5 for t = 0..4; valid t in 1..3.
        assert_eq!(valid_span(0, 4, 2, -1, 5), (1, 3));
        // Everything to the right of the input.
        assert_eq!(valid_span(3, 2, 2, 0, 5), (0, 0));
    }

    #[test]
    fn lowering_a_3x3_image_with_padding() {
        // Input [[1,2,3],[4,5,6],[7,8,9]], 2x2 kernel, padding 1, stride 2: output 2x2 at
        // input rows/cols {-1, 1}. Tap (0,0) reads (-1,-1), (-1,1), (1,-1), (1,1) -> 0, 0, 0, 5.
        let geo = Conv2dGeometry::new(
            [1, 1, 3, 3],
            [1, 1, 2, 2],
            Conv2dParams::default().stride(2).padding(1),
        )
        .unwrap();
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut col = [f32::NAN; 4 * 4];
        for (t, row) in col.chunks_mut(4).enumerate() {
            im2col_row(&geo, &x, t / 2, t % 2, 0, row);
        }
        assert_eq!(&col[0..4], &[0.0, 0.0, 0.0, 5.0]); // tap (0,0)
        assert_eq!(&col[4..8], &[0.0, 0.0, 4.0, 6.0]); // tap (0,1): cols 0, 2 at rows -1, 1
        assert_eq!(&col[8..12], &[0.0, 2.0, 0.0, 8.0]); // tap (1,0): rows 0, 2 at cols -1, 1
        assert_eq!(&col[12..16], &[1.0, 3.0, 7.0, 9.0]); // tap (1,1)
    }
}
