//! What a forward convolution applies to each output after its bias, while the output is
//! still in cache: the fused activation of inference (`conv → bias → ReLU` in one pass).

use rayon::prelude::*;

use crate::elementwise::relu_value;

/// The element-wise function a forward pass applies to every output after adding the bias.
///
/// [`Epilogue::Relu`] gives the same bits as running [`crate::elementwise::relu`] over the
/// plain forward pass's output (NaN and `-0.0` pass through), without a second pass over
/// memory on the paths that apply it per block (the implicit GEMM and Winograd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Epilogue {
    /// The output as computed: `conv(x, w) + bias`.
    #[default]
    Identity,
    /// `max(0, conv(x, w) + bias)`, PyTorch's `relu` of the output.
    Relu,
}

impl Epilogue {
    /// Applies the epilogue to `values` in place.
    pub(crate) fn apply(self, values: &mut [f32]) {
        if self == Epilogue::Relu {
            for v in values {
                *v = relu_value(*v);
            }
        }
    }

    /// Applies the epilogue to a whole output after the fact, in parallel chunks (the paths
    /// that write their output scattered apply it this way).
    pub(crate) fn apply_all(self, values: &mut [f32]) {
        /// Floats per parallel chunk: 256 KiB.
        const CHUNK: usize = 1 << 16;
        if self == Epilogue::Identity {
            return;
        }
        if values.len() > CHUNK && rayon::current_num_threads() > 1 {
            values
                .par_chunks_mut(CHUNK)
                .for_each(|chunk| self.apply(chunk));
        } else {
            self.apply(values);
        }
    }
}
