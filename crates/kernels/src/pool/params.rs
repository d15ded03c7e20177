//! Pooling configurations and the output-size arithmetic PyTorch uses (`pooling_output_shape`
//! and `pool2d_shape_check`; the rules are stated in [the module docs](super)).

use crate::error::{KernelError, Result};

/// Configuration of a 2-D max pooling (`torch.nn.MaxPool2d`): window, step, implicit
/// negative-infinity padding, dilation and output rounding. Pairs are `(height, width)`.
///
/// ```
/// use ventral_kernels::pool::MaxPool2dParams;
///
/// let p = MaxPool2dParams::new((3, 3)).with_stride((2, 2)).with_padding((1, 1));
/// assert_eq!(p.output_shape([1, 64, 112, 112])?, [1, 64, 56, 56]);
/// # Ok::<(), ventral_kernels::KernelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    /// Window size `(kh, kw)` before dilation.
    pub kernel: (usize, usize),
    /// Step between window starts `(sh, sw)`.
    pub stride: (usize, usize),
    /// Implicit padding on both sides `(ph, pw)`; at most half the kernel.
    pub padding: (usize, usize),
    /// Spacing between window taps `(dh, dw)`; 1 is a dense window.
    pub dilation: (usize, usize),
    /// Round the output size up instead of down (windows may hang past the right edge).
    pub ceil_mode: bool,
}

impl MaxPool2dParams {
    /// PyTorch's defaults for a kernel: stride equal to the kernel, no padding, no dilation,
    /// floor rounding.
    pub fn new(kernel: (usize, usize)) -> Self {
        Self {
            kernel,
            stride: kernel,
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    /// [`MaxPool2dParams::new`] with a square `k x k` kernel.
    pub fn square(k: usize) -> Self {
        Self::new((k, k))
    }

    /// The same configuration with another stride.
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Self { stride, ..self }
    }

    /// The same configuration with another padding.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Self { padding, ..self }
    }

    /// The same configuration with another dilation.
    pub fn with_dilation(self, dilation: (usize, usize)) -> Self {
        Self { dilation, ..self }
    }

    /// The same configuration with another rounding of the output size.
    pub fn with_ceil_mode(self, ceil_mode: bool) -> Self {
        Self { ceil_mode, ..self }
    }

    /// The NCHW output shape for an NCHW `input` shape.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if the configuration is invalid for this input (see
    /// [the output-size rules](crate::pool#output-size)) or the element counts overflow
    /// `usize`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.geometry("max_pool2d", input).map(|g| g.output)
    }

    /// Validated geometry of this pooling over `input`, naming `op` in errors.
    pub(crate) fn geometry(&self, op: &'static str, input: [usize; 4]) -> Result<Geometry> {
        let h = Axis {
            len: input[2],
            kernel: self.kernel.0,
            stride: self.stride.0,
            padding: self.padding.0,
            dilation: self.dilation.0,
        };
        let w = Axis {
            len: input[3],
            kernel: self.kernel.1,
            stride: self.stride.1,
            padding: self.padding.1,
            dilation: self.dilation.1,
        };
        Geometry::new(op, input, h, w, self.ceil_mode)
    }
}

/// Configuration of a 2-D average pooling (`torch.nn.AvgPool2d`). Pairs are `(height, width)`.
///
/// The divisor of a window follows PyTorch: with `count_include_pad` it is the window's area
/// inside the zero-padded input (so a `ceil_mode` window hanging past the right padding is
/// clipped), without it the number of real input elements; `divisor_override` replaces both.
///
/// ```
/// use ventral_kernels::pool::AvgPool2dParams;
///
/// let p = AvgPool2dParams::new((2, 2)).with_ceil_mode(true);
/// assert_eq!(p.output_shape([1, 3, 5, 5])?, [1, 3, 3, 3]);
/// # Ok::<(), ventral_kernels::KernelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvgPool2dParams {
    /// Window size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step between window starts `(sh, sw)`.
    pub stride: (usize, usize),
    /// Implicit zero padding on both sides `(ph, pw)`; at most half the kernel.
    pub padding: (usize, usize),
    /// Round the output size up instead of down (windows may hang past the right edge).
    pub ceil_mode: bool,
    /// Count padding zeros in the divisor (PyTorch's default, `true`).
    pub count_include_pad: bool,
    /// Divide every window by this instead (must not be 0).
    pub divisor_override: Option<usize>,
}

impl AvgPool2dParams {
    /// PyTorch's defaults for a kernel: stride equal to the kernel, no padding, floor
    /// rounding, padding counted in the divisor, no divisor override.
    pub fn new(kernel: (usize, usize)) -> Self {
        Self {
            kernel,
            stride: kernel,
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }

    /// [`AvgPool2dParams::new`] with a square `k x k` kernel.
    pub fn square(k: usize) -> Self {
        Self::new((k, k))
    }

    /// The same configuration with another stride.
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Self { stride, ..self }
    }

    /// The same configuration with another padding.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Self { padding, ..self }
    }

    /// The same configuration with another rounding of the output size.
    pub fn with_ceil_mode(self, ceil_mode: bool) -> Self {
        Self { ceil_mode, ..self }
    }

    /// The same configuration, counting (or not) padding zeros in the divisor.
    pub fn with_count_include_pad(self, count_include_pad: bool) -> Self {
        Self {
            count_include_pad,
            ..self
        }
    }

    /// The same configuration with a fixed divisor for every window (or none).
    pub fn with_divisor_override(self, divisor_override: Option<usize>) -> Self {
        Self {
            divisor_override,
            ..self
        }
    }

    /// The NCHW output shape for an NCHW `input` shape.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if the configuration is invalid for this input (see
    /// [the output-size rules](crate::pool#output-size)), `divisor_override` is `Some(0)`, or
    /// the element counts overflow `usize`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.geometry("avg_pool2d", input).map(|g| g.output)
    }

    /// Validated geometry of this pooling over `input`, naming `op` in errors.
    pub(crate) fn geometry(&self, op: &'static str, input: [usize; 4]) -> Result<Geometry> {
        if self.divisor_override == Some(0) {
            return Err(invalid(op, "divisor_override must not be 0".to_string()));
        }
        let h = Axis {
            len: input[2],
            kernel: self.kernel.0,
            stride: self.stride.0,
            padding: self.padding.0,
            dilation: 1,
        };
        let w = Axis {
            len: input[3],
            kernel: self.kernel.1,
            stride: self.stride.1,
            padding: self.padding.1,
            dilation: 1,
        };
        Geometry::new(op, input, h, w, self.ceil_mode)
    }
}

/// One spatial axis of a pooling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    /// Input length along the axis.
    pub len: usize,
    /// Window taps.
    pub kernel: usize,
    /// Step between window starts.
    pub stride: usize,
    /// Implicit padding on each side.
    pub padding: usize,
    /// Spacing between taps.
    pub dilation: usize,
}

impl Axis {
    /// The pooled length (rules in the parent module docs), validating the configuration.
    fn output_len(self, op: &'static str, name: &str, ceil_mode: bool) -> Result<usize> {
        let Axis {
            len,
            kernel,
            stride,
            padding,
            dilation,
        } = self;
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(invalid(
                op,
                format!(
                    "{name}: kernel ({kernel}), stride ({stride}) and dilation ({dilation}) \
                     must all be positive"
                ),
            ));
        }
        if padding > kernel / 2 {
            return Err(invalid(
                op,
                format!("{name}: padding {padding} is more than half the kernel size {kernel}"),
            ));
        }
        if len == 0 {
            return Err(invalid(op, format!("input {name} is 0")));
        }
        // i128 holds every usize and their sums and small products exactly.
        let (l, k, s, p, d) = (
            len as i128,
            kernel as i128,
            stride as i128,
            padding as i128,
            dilation as i128,
        );
        let span = d * (k - 1) + 1;
        let round = if ceil_mode { s - 1 } else { 0 };
        let mut out = (l + 2 * p - span + round).div_euclid(s) + 1;
        if ceil_mode && (out - 1) * s >= l + p {
            out -= 1;
        }
        if out < 1 {
            return Err(invalid(
                op,
                format!(
                    "{name}: input {len} with padding {padding} is shorter than the dilated \
                     kernel ({span}); the output would be empty"
                ),
            ));
        }
        usize::try_from(out).map_err(|_| invalid(op, format!("{name}: output too large")))
    }
}

/// Validated shapes of one pooling call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Input shape, NCHW.
    pub input: [usize; 4],
    /// Output shape, NCHW.
    pub output: [usize; 4],
    /// The height axis.
    pub h: Axis,
    /// The width axis.
    pub w: Axis,
}

impl Geometry {
    fn new(op: &'static str, input: [usize; 4], h: Axis, w: Axis, ceil: bool) -> Result<Self> {
        let oh = h.output_len(op, "height", ceil)?;
        let ow = w.output_len(op, "width", ceil)?;
        let output = [input[0], input[1], oh, ow];
        numel(op, input)?;
        numel(op, output)?;
        Ok(Self {
            input,
            output,
            h,
            w,
        })
    }

    /// Elements of one input plane.
    pub fn in_plane(&self) -> usize {
        self.input[2] * self.input[3]
    }

    /// Elements of one output plane.
    pub fn out_plane(&self) -> usize {
        self.output[2] * self.output[3]
    }

    /// Number of `(n, c)` planes.
    pub fn planes(&self) -> usize {
        self.input[0] * self.input[1]
    }
}

/// Elements of an NCHW shape.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] if the product overflows `usize`.
pub(crate) fn numel(op: &'static str, shape: [usize; 4]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            invalid(
                op,
                format!("shape {shape:?} has more elements than fit in usize"),
            )
        })
}

/// Checks that the slice `what` holds exactly the elements of `shape`.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] naming `op`, the slice, its length and the shape otherwise.
pub(crate) fn check_len(op: &'static str, what: &str, len: usize, shape: [usize; 4]) -> Result<()> {
    let want = numel(op, shape)?;
    if len == want {
        Ok(())
    } else {
        Err(invalid(
            op,
            format!("{what} has {len} elements, but shape {shape:?} needs {want}"),
        ))
    }
}

/// A [`KernelError::ShapeMismatch`] for `op`.
#[cold]
pub(crate) fn invalid(op: &'static str, detail: String) -> KernelError {
    KernelError::ShapeMismatch { op, detail }
}
