//! The forward pass of stride-1, dilation-1 convolutions with narrow output rows (LeNet's
//! layers, the late layers of small-image networks), computed over "flat" rows.
//!
//! Lowering such a layer copies one short output row (a few floats) per tap and row, and the
//! copies cost as much as the multiply. Instead, pad each input plane to `Hp x Wp` and compute
//! the output at every column of the padded width: output position `oh * Wp + ow` then reads
//! tap `(ki, kj)` at input position `oh * Wp + ow + ki * Wp + kj`, a constant offset. Each
//! lowered row is one contiguous run of the padded plane, packed straight into micro-panels.
//! The `Wp - out_w` extra columns of each output row (values that wrap into the next input
//! row) are computed and dropped: `Wp / out_w` more multiply work for far cheaper lowering.
//! Every output element is still one dot product over the taps in order, as in the GEMM path.

use rayon::prelude::*;

use super::padded::PaddedPlanes;
use super::{Conv2d, Epilogue};
use crate::error::Result;
use crate::gemm::implicit::{PackedA, gemm_implicit};

/// Floats of packed B a unit of work aims for (512 KiB: stays in L2 while read).
const PIECE_FLOATS: usize = 1 << 17;

impl Conv2d {
    /// `y = conv(x, w) + bias` over flat rows (see the module docs); the caller has checked
    /// [`super::ConvPath::Flat`] serves the pass and the slice lengths.
    pub(super) fn forward_flat(
        &self,
        x: &[f32],
        w: &[f32],
        prepared: Option<&[PackedA]>,
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        let g = &self.geometry;
        let (height, width) = (
            g.in_h + 2 * g.params.padding.0,
            g.in_w + 2 * g.params.padding.1,
        );
        // The last tap of the last flat position reads `kw - 1` floats past the padded plane.
        let planes = PaddedPlanes::new(g, height * width + g.kernel_w);
        let padded_len = planes.len;
        let flat = g.out_h * width;
        let (gi, go, k) = (g.group_in(), g.group_out(), g.col_rows());
        let mut wide = vec![0.0f32; g.batch * g.out_channels * flat];
        // Lowered row r (tap (c, ki, kj)) starts at this offset from the flat position.
        let offsets: Vec<usize> = (0..k)
            .map(|r| {
                let (c, ki, kj) = self.tap(r);
                c * padded_len + ki * width + kj
            })
            .collect();
        for group in 0..g.params.groups {
            let packed = self.group_weights(w, prepared, group)?;
            let nr = packed.nr();
            let piece = (PIECE_FLOATS / k.clamp(1, 256)).max(nr) / nr * nr;
            let pieces: Vec<(usize, usize)> = (0..flat)
                .step_by(piece)
                .map(|jc| (jc, piece.min(flat - jc)))
                .collect();
            let outputs = self.output_planes_of(group, flat);
            gemm_implicit(
                &packed,
                bias.map(|b| &b[group * go..][..go]),
                Epilogue::Identity,
                outputs.view_mut(&mut wide)?,
                &pieces,
                |image, pc, kc, jc, nc, scratch, out| {
                    if pc == 0 {
                        // The group's input planes, zero-padded, one after another.
                        scratch.clear();
                        scratch.resize(gi * padded_len, 0.0);
                        planes.copy_group(g, x, image, group, scratch);
                    }
                    // Where each of the block's lowered rows starts in the padded planes.
                    let mut starts = [0usize; 256];
                    for (start, &offset) in starts.iter_mut().zip(&offsets[pc..pc + kc]) {
                        *start = offset + jc;
                    }
                    let starts = &starts[..kc];
                    match nr {
                        48 => pack_panels::<48>(scratch, starts, nc, out),
                        32 => pack_panels::<32>(scratch, starts, nc, out),
                        24 => pack_panels::<24>(scratch, starts, nc, out),
                        16 => pack_panels::<16>(scratch, starts, nc, out),
                        8 => pack_panels::<8>(scratch, starts, nc, out),
                        _ => unreachable!("micro-panels are 8, 16, 24, 32 or 48 wide"),
                    }
                },
            );
            packed.finish();
        }
        // Keep the first out_w columns of every flat row.
        y.par_chunks_mut(g.positions().max(1))
            .zip(wide.par_chunks(flat.max(1)))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(g.out_w).zip(src.chunks_exact(width)) {
                    d.copy_from_slice(&s[..g.out_w]);
                }
            });
        Ok(())
    }
}

/// Packs the lowered rows `planes[starts[p]..][..nc]` (`p < kc`) as `ceil(nc / NR)`
/// micro-panels of `kc x NR` floats, `p`-major, columns past `nc` zero. Panels are written
/// front to back; the rows they read are all in the few KiB of `planes`.
#[inline]
fn pack_panels<const NR: usize>(planes: &[f32], starts: &[usize], nc: usize, out: &mut [f32]) {
    let kc = starts.len();
    let full = nc / NR;
    for (q, panel) in out.chunks_exact_mut(kc * NR).take(full).enumerate() {
        let (steps, _) = panel.as_chunks_mut::<NR>();
        for (dst, &start) in steps.iter_mut().zip(starts) {
            let src: &[f32; NR] = planes[start + q * NR..][..NR]
                .try_into()
                .expect("NR floats");
            *dst = *src;
        }
    }
    let tail = nc - full * NR;
    if tail > 0 {
        let panel = &mut out[full * kc * NR..][..kc * NR];
        for (dst, &start) in panel.chunks_exact_mut(NR).zip(starts) {
            dst[..tail].copy_from_slice(&planes[start + full * NR..][..tail]);
            dst[tail..].fill(0.0);
        }
    }
}
