//! A convolution's weights packed once for many forward passes.
//!
//! Every forward pass packs its weights for the micro-kernel (and Winograd transforms them
//! first): a pass over all of them that training needs (they change every step) but
//! inference repeats for nothing. At batch 1 it is a large share: a deep layer's weights are
//! megabytes, read, rearranged and written, to be multiplied by one image. A caller that
//! keeps its weights fixed (inference) packs them once with [`Conv2d::prepare_forward`] and
//! runs [`Conv2d::forward_prepared`]; the results are the same bits as [`Conv2d::forward_with`].

use super::plan::{ConvPath, Pass};
use super::{Conv2d, Epilogue, check_len, dense, winograd_packed_weights};
use crate::error::Result;
use crate::gemm::implicit::PackedA;
use crate::isa::Isa;

/// Weights packed for one forward path of one weight shape on one instruction set, made by
/// [`Conv2d::prepare_forward`]. It holds no reference to the weights it was made from: the
/// caller keeps it with them and drops it when they change.
pub struct PreparedWeights {
    isa: Isa,
    path: ConvPath,
    weight_shape: [usize; 4],
    groups: usize,
    /// Implicit GEMM and flat rows: one packed matrix per group. Winograd: the 36 `U_ξ`.
    packed: Vec<PackedA>,
    /// The dense path: its matrix, transposed (`dense.rs`); empty on every other path.
    dense_t: Vec<f32>,
}

impl std::fmt::Debug for PreparedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedWeights")
            .field("isa", &self.isa)
            .field("path", &self.path)
            .field("weight_shape", &self.weight_shape)
            .field("groups", &self.groups)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl PreparedWeights {
    /// The forward path the weights were packed for.
    pub fn path(&self) -> ConvPath {
        self.path
    }

    /// Bytes of packed weights held, for a cache's budget.
    pub fn bytes(&self) -> usize {
        self.packed.iter().map(PackedA::bytes).sum::<usize>() + 4 * self.dense_t.capacity()
    }
}

impl Conv2d {
    /// `w` packed for this convolution's forward path (for the dense path, its matrix), or
    /// `None` where that path packs nothing it could reuse (the direct, channel-vectorised
    /// and batch-folded paths).
    /// The path depends on the input's size as well as the weights', so weights prepared at
    /// one input size may not [`fit`](Conv2d::fits) a convolution at another.
    ///
    /// # Errors
    /// [`crate::KernelError::ShapeMismatch`] if `w` does not have the weight shape.
    pub fn prepare_forward(&self, w: &[f32]) -> Result<Option<PreparedWeights>> {
        let g = &self.geometry;
        check_len("weight", w, g.weight_shape())?;
        let path = self.path(Pass::Forward);
        let packed = match path {
            // On AVX-512 and AVX2 flat rows are read in place (`flat_direct.rs`): nothing to
            // pack.
            ConvPath::Flat if matches!(self.isa, Isa::Avx512 | Isa::Avx2Fma) => return Ok(None),
            ConvPath::Implicit | ConvPath::Flat | ConvPath::Pointwise => (0..g.params.groups)
                .map(|group| {
                    Ok(PackedA::new_in(
                        self.isa,
                        self.group_matrix(w, group)?,
                        Vec::new(),
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
            ConvPath::Winograd => winograd_packed_weights::prepare(self.isa, g, w)?,
            ConvPath::Dense => Vec::new(),
            _ => return Ok(None),
        };
        let dense_t = if path == ConvPath::Dense {
            dense::prepare(g, w)
        } else {
            Vec::new()
        };
        Ok(Some(PreparedWeights {
            isa: self.isa,
            path,
            weight_shape: g.weight_shape(),
            groups: g.params.groups,
            packed,
            dense_t,
        }))
    }

    /// Whether `prepared` was made for this convolution's forward path, weight shape, groups
    /// and instruction set, so [`Conv2d::forward_prepared`] runs on it.
    pub fn fits(&self, prepared: &PreparedWeights) -> bool {
        let g = &self.geometry;
        prepared.isa == self.isa
            && prepared.path == self.path(Pass::Forward)
            && prepared.weight_shape == g.weight_shape()
            && prepared.groups == g.params.groups
    }

    /// [`Conv2d::forward_with`] on weights packed earlier. `prepared` must come from
    /// [`Conv2d::prepare_forward`] on the values of `w`; where it does not
    /// [`fit`](Conv2d::fits) this convolution, `w` is packed as usual instead.
    ///
    /// # Errors
    /// [`crate::KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn forward_prepared(
        &self,
        x: &[f32],
        w: &[f32],
        prepared: &PreparedWeights,
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) -> Result<()> {
        if !self.fits(prepared) {
            return self.forward_with(x, w, bias, epilogue, y);
        }
        self.check_forward(x, w, bias, y)?;
        if prepared.path == ConvPath::Dense {
            dense::forward_with_matrix(self.isa, &self.geometry, x, &prepared.dense_t, bias, y)?;
            epilogue.apply_all(y);
            return Ok(());
        }
        self.forward_on(x, w, Some(&prepared.packed), bias, epilogue, y)
    }
}
