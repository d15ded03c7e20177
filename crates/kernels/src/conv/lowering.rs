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

/// Walks output positions `p0..p0 + cols` row by row of the output image, calling
/// `f(oh, ow0, j, n)` for each run of `n` positions starting at output `(oh, ow0)`, which land
/// in columns `j..j + n` of the lowered matrix.
fn for_each_run(
    geo: &Conv2dGeometry,
    p0: usize,
    cols: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let (mut p, mut j) = (p0, 0);
    while j < cols {
        let (oh, ow0) = (p / geo.out_w, p % geo.out_w);
        let n = (geo.out_w - ow0).min(cols - j);
        f(oh, ow0, j, n);
        j += n;
        p += n;
    }
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
    let (sh, sw) = geo.params.stride;
    let (ph, pw) = geo.params.padding;
    let (dh, dw) = geo.params.dilation;
    let row_off = (ki * dh) as isize - ph as isize;
    let col_off = (kj * dw) as isize - pw as isize;
    let cols = row.len();
    if p0.is_multiple_of(geo.out_w) && cols.is_multiple_of(geo.out_w) {
        // Whole output rows: every run has the same valid span, computed once.
        let (lo, hi) = valid_span(0, geo.out_w, sw, col_off, geo.in_w);
        let start = (lo * sw) as isize + col_off;
        for (r, seg) in row.chunks_exact_mut(geo.out_w).enumerate() {
            let ih = ((p0 / geo.out_w + r) * sh) as isize + row_off;
            if ih < 0 || ih >= geo.in_h as isize {
                seg.fill(0.0);
                continue;
            }
            seg[..lo].fill(0.0);
            seg[hi..].fill(0.0);
            if lo == hi {
                continue;
            }
            let src = &plane[ih as usize * geo.in_w + start as usize..];
            if sw == 1 {
                for (v, s) in seg[lo..hi].iter_mut().zip(src) {
                    *v = *s;
                }
            } else {
                for (v, s) in seg[lo..hi].iter_mut().zip(src.iter().step_by(sw)) {
                    *v = *s;
                }
            }
        }
        return;
    }
    for_each_run(geo, p0, cols, |oh, ow0, j, n| {
        let seg = &mut row[j..j + n];
        let ih = (oh * sh) as isize + row_off;
        if ih < 0 || ih >= geo.in_h as isize {
            seg.fill(0.0);
            return;
        }
        let src = &plane[ih as usize * geo.in_w..][..geo.in_w];
        let (lo, hi) = valid_span(ow0, n, sw, col_off, geo.in_w);
        seg[..lo].fill(0.0);
        seg[hi..].fill(0.0);
        let start = ((ow0 + lo) * sw) as isize + col_off;
        if sw == 1 {
            let start = start as usize;
            seg[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
        } else {
            for (t, v) in seg[lo..hi].iter_mut().enumerate() {
                *v = src[start as usize + t * sw];
            }
        }
    });
}

/// Positions lowered at a time into a stack buffer by the packers below: a multiple of every
/// micro-panel width, and small enough (8 KiB) to stay in L1 next to the panel being written.
pub(crate) const ROW_CHUNK: usize = 2048;

/// Packs rows `r0..r0 + kc` of one image's lowered matrix (`planes`: the image's input
/// planes of one group, back to back), output positions `p0..p0 + nc`, as `ceil(nc / nr)`
/// micro-panels of `kc x nr` floats, `p`-major, columns past `nc` zero: the B operand of the
/// forward product, packed without materialising the lowered matrix.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_lowered(
    geo: &Conv2dGeometry,
    planes: &[f32],
    r0: usize,
    kc: usize,
    p0: usize,
    nc: usize,
    nr: usize,
    out: &mut [f32],
) {
    match nr {
        16 => pack_lowered_nr::<16>(geo, planes, r0, kc, p0, nc, out),
        8 => pack_lowered_nr::<8>(geo, planes, r0, kc, p0, nc, out),
        _ => unreachable!("micro-panels are 8 or 16 wide"),
    }
}

fn pack_lowered_nr<const NR: usize>(
    geo: &Conv2dGeometry,
    planes: &[f32],
    r0: usize,
    kc: usize,
    p0: usize,
    nc: usize,
    out: &mut [f32],
) {
    let (taps, plane_len) = (geo.kernel_h * geo.kernel_w, geo.in_h * geo.in_w);
    let mut tmp = [0.0f32; ROW_CHUNK];
    for p in 0..kc {
        let (c, t) = ((r0 + p) / taps, (r0 + p) % taps);
        let plane = &planes[c * plane_len..][..plane_len];
        for j0 in (0..nc).step_by(ROW_CHUNK) {
            let len = ROW_CHUNK.min(nc - j0);
            let row = &mut tmp[..len];
            im2col_row(geo, plane, t / geo.kernel_w, t % geo.kernel_w, p0 + j0, row);
            // Step p of every panel, a whole panel (kc * NR floats) apart.
            let first = (j0 / NR * kc + p) * NR;
            let pieces = row.chunks_exact(NR);
            let tail = pieces.remainder();
            let full = len / NR;
            for (dst, piece) in out[first..].chunks_mut(kc * NR).zip(pieces) {
                dst[..NR].copy_from_slice(piece);
            }
            if !tail.is_empty() {
                let dst = &mut out[first + full * kc * NR..][..NR];
                dst[..tail.len()].copy_from_slice(tail);
                dst[tail.len()..].fill(0.0);
            }
        }
    }
}

/// Packs the transpose of a block of one image's lowered matrix: B rows are output positions
/// `p0..p0 + kc`, B columns are lowered rows `r0..r0 + nc`, written as `ceil(nc / nr)`
/// micro-panels of `kc x nr` floats, `p`-major, columns past `nc` zero: the B operand of the
/// weight gradient. `kc` is at most [`ROW_CHUNK`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_lowered_t(
    geo: &Conv2dGeometry,
    planes: &[f32],
    r0: usize,
    nc: usize,
    p0: usize,
    kc: usize,
    nr: usize,
    out: &mut [f32],
) {
    assert!(kc <= ROW_CHUNK, "pack_lowered_t: {kc} positions at once");
    match nr {
        16 => pack_lowered_t_nr::<16>(geo, planes, r0, nc, p0, kc, out),
        8 => pack_lowered_t_nr::<8>(geo, planes, r0, nc, p0, kc, out),
        _ => unreachable!("micro-panels are 8 or 16 wide"),
    }
}

fn pack_lowered_t_nr<const NR: usize>(
    geo: &Conv2dGeometry,
    planes: &[f32],
    r0: usize,
    nc: usize,
    p0: usize,
    kc: usize,
    out: &mut [f32],
) {
    let (taps, plane_len) = (geo.kernel_h * geo.kernel_w, geo.in_h * geo.in_w);
    let mut tmp = [0.0f32; ROW_CHUNK];
    let row = &mut tmp[..kc];
    for (panel, dst) in out
        .chunks_exact_mut(kc * NR)
        .take(nc.div_ceil(NR))
        .enumerate()
    {
        for jj in 0..NR {
            let j = panel * NR + jj;
            if j >= nc {
                for p in 0..kc {
                    dst[p * NR + jj] = 0.0;
                }
                continue;
            }
            let (c, t) = ((r0 + j) / taps, (r0 + j) % taps);
            let plane = &planes[c * plane_len..][..plane_len];
            im2col_row(geo, plane, t / geo.kernel_w, t % geo.kernel_w, p0, row);
            // Column jj of the panel: every NR-th float from jj.
            for (p, &v) in row.iter().enumerate() {
                dst[p * NR + jj] = v;
            }
        }
    }
}

/// The adjoint of lowering (every [`im2col_row`] of a channel, rows `ld` apart): adds each
/// lowered entry back onto the input pixel it came from (entries from the padding are dropped).
pub(crate) fn col2im_channel(
    geo: &Conv2dGeometry,
    src: &[f32],
    ld: usize,
    p0: usize,
    cols: usize,
    plane: &mut [f32],
) {
    let (sh, sw) = geo.params.stride;
    let (ph, pw) = geo.params.padding;
    let (dh, dw) = geo.params.dilation;
    for ki in 0..geo.kernel_h {
        let row_off = (ki * dh) as isize - ph as isize;
        for kj in 0..geo.kernel_w {
            let col_off = (kj * dw) as isize - pw as isize;
            let row = &src[(ki * geo.kernel_w + kj) * ld..][..cols];
            if p0.is_multiple_of(geo.out_w) && cols.is_multiple_of(geo.out_w) {
                // Whole output rows: every run has the same valid span, computed once.
                let (lo, hi) = valid_span(0, geo.out_w, sw, col_off, geo.in_w);
                let start = (lo * sw) as isize + col_off;
                for (r, seg) in row.chunks_exact(geo.out_w).enumerate() {
                    let ih = ((p0 / geo.out_w + r) * sh) as isize + row_off;
                    if ih < 0 || ih >= geo.in_h as isize || lo == hi {
                        continue;
                    }
                    let dst = &mut plane[ih as usize * geo.in_w + start as usize..];
                    if sw == 1 {
                        for (d, v) in dst.iter_mut().zip(&seg[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (d, v) in dst.iter_mut().step_by(sw).zip(&seg[lo..hi]) {
                            *d += v;
                        }
                    }
                }
                continue;
            }
            for_each_run(geo, p0, cols, |oh, ow0, j, n| {
                let ih = (oh * sh) as isize + row_off;
                if ih < 0 || ih >= geo.in_h as isize {
                    return;
                }
                let dst = &mut plane[ih as usize * geo.in_w..][..geo.in_w];
                let (lo, hi) = valid_span(ow0, n, sw, col_off, geo.in_w);
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
    }
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
