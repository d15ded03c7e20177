//! 2-D pooling over NCHW f32 tensors, forward and backward, with PyTorch's semantics.
//!
//! - [`max_pool2d`] / [`max_pool2d_backward`]: `torch.nn.functional.max_pool2d` with
//!   `return_indices=True`; kernel, stride, padding, dilation and `ceil_mode`.
//!   [`max_pool2d_values`] gives the same values without indices, for inference.
//! - [`avg_pool2d`] / [`avg_pool2d_backward`]: `avg_pool2d` with `ceil_mode`,
//!   `count_include_pad` and `divisor_override`.
//! - [`adaptive_avg_pool2d`] / [`adaptive_avg_pool2d_backward`]: windows
//!   `[floor(i*H/oh), ceil((i+1)*H/oh))`; [`global_avg_pool2d`] is the `(1, 1)` case.
//!
//! Tensors are contiguous row-major slices with an explicit `[N, C, H, W]` shape; every
//! `(n, c)` plane is pooled independently. Arguments are validated once, up front, and bad
//! ones give [`crate::KernelError::ShapeMismatch`] naming the op; nothing here panics on user
//! input.
//!
//! # Output size
//! For one spatial axis of length `L` with kernel `k`, stride `s`, padding `p` and dilation
//! `d` (1 for average pooling), as PyTorch's `pooling_output_shape`:
//!
//! ```text
//! out = floor((L + 2p - d(k-1) - 1 + (ceil_mode ? s-1 : 0)) / s) + 1
//! if ceil_mode and (out-1)*s >= L + p: out -= 1   // the last window must start inside
//!                                                  // the input or the left padding
//! ```
//!
//! A configuration is rejected, as in PyTorch, if kernel, stride or dilation is 0, if the
//! padding exceeds half the kernel (`p > k / 2`), if an input spatial size is 0, or if the
//! output would be empty.
//!
//! # Threads and determinism
//! Above [`PARALLEL_MIN_WORK`] units of work, planes are spread over the current rayon pool.
//! A plane is always computed by one task in one fixed order (backward passes accumulate
//! overlapping windows in output order), so results are bit-identical for any thread count.
//!
//! ```
//! use ventral_kernels::pool::{max_pool2d, MaxPool2dParams};
//!
//! // One 4x4 plane holding 0..16; 2x2 windows with stride 2 keep each block's bottom-right.
//! let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
//! let out = max_pool2d(&x, [1, 1, 4, 4], &MaxPool2dParams::square(2))?;
//! assert_eq!(out.shape, [1, 1, 2, 2]);
//! assert_eq!(out.y, [5.0, 7.0, 13.0, 15.0]);
//! assert_eq!(out.indices, [5, 7, 13, 15]);
//! # Ok::<(), ventral_kernels::KernelError>(())
//! ```

mod adaptive;
mod avg;
mod max;
mod max_values;
mod params;

use rayon::prelude::*;

pub use adaptive::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_output_shape, global_avg_pool2d,
    global_avg_pool2d_backward,
};
pub use avg::{avg_pool2d, avg_pool2d_backward};
pub use max::{max_pool2d, max_pool2d_backward, max_pool2d_backward_into, max_pool2d_into};
pub use max_values::{max_pool2d_values, max_pool2d_values_into};
pub use params::{AvgPool2dParams, MaxPool2dParams};

/// Below this much work (elements read or written, counting every window tap) a pooling call
/// stays on the calling thread: waking another thread costs more than the work.
pub const PARALLEL_MIN_WORK: usize = 1 << 15;

/// The result of a pooling: output values and their NCHW shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    /// Output values, row-major over `shape`.
    pub y: Vec<f32>,
    /// Output shape `[N, C, OH, OW]`.
    pub shape: [usize; 4],
}

/// The result of a max pooling: output values, where each came from, and their NCHW shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPooled {
    /// Output values, row-major over `shape`.
    pub y: Vec<f32>,
    /// For each output, the flat index `ih * W + iw` of its maximum within its own input
    /// plane (PyTorch's `return_indices`); `-1` for a window holding no input element at all
    /// (possible only with dilation > 1 on tiny inputs; its output is `-inf`).
    pub indices: Vec<i64>,
    /// Output shape `[N, C, OH, OW]`.
    pub shape: [usize; 4],
}

/// Whether a call doing `work` units of work should use the rayon pool.
fn go_parallel(work: usize) -> bool {
    work > PARALLEL_MIN_WORK && rayon::current_num_threads() > 1
}

/// Runs `f(plane_index, out_plane)` for every `out_len`-element plane of `out`, in parallel
/// when `parallel`. Each plane is handled by exactly one call.
fn for_each_plane<F>(parallel: bool, out: &mut [f32], out_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    if out.is_empty() || out_len == 0 {
        return;
    }
    if parallel {
        out.par_chunks_mut(out_len)
            .enumerate()
            .for_each(|(p, o)| f(p, o));
    } else {
        out.chunks_mut(out_len)
            .enumerate()
            .for_each(|(p, o)| f(p, o));
    }
}

/// Plane `p` of a tensor cut into `len`-element planes.
#[inline]
fn plane(x: &[f32], p: usize, len: usize) -> &[f32] {
    &x[p * len..(p + 1) * len]
}
