//! The shape arithmetic of a 2-D convolution, validated once.

use crate::error::{KernelError, Result};

/// Stride, zero padding, dilation and groups of a convolution, as in PyTorch's `Conv2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between output positions, `(vertical, horizontal)`.
    pub stride: (usize, usize),
    /// Zeros added on each side of the input, `(top and bottom, left and right)`.
    pub padding: (usize, usize),
    /// Spacing between kernel taps, `(vertical, horizontal)`; 1 is a dense kernel.
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels split into this many independent convolutions
    /// (`groups == in_channels` is a depthwise convolution).
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// The same parameters with a square stride.
    pub fn stride(self, s: usize) -> Self {
        Self {
            stride: (s, s),
            ..self
        }
    }

    /// The same parameters with equal padding on all sides.
    pub fn padding(self, p: usize) -> Self {
        Self {
            padding: (p, p),
            ..self
        }
    }

    /// The same parameters with a square dilation.
    pub fn dilation(self, d: usize) -> Self {
        Self {
            dilation: (d, d),
            ..self
        }
    }

    /// The same parameters with `g` groups.
    pub fn groups(self, g: usize) -> Self {
        Self { groups: g, ..self }
    }
}

/// Every size of one convolution: input `[batch, in_channels, in_h, in_w]`, weight
/// `[out_channels, in_channels / groups, kernel_h, kernel_w]`, output
/// `[batch, out_channels, out_h, out_w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
}

const OP: &str = "conv2d";

fn invalid(detail: String) -> KernelError {
    KernelError::InvalidArgument { op: OP, detail }
}

/// Output length along one axis: `(in + 2 pad - dilation (kernel - 1) - 1) / stride + 1`, or an
/// error if the dilated kernel does not fit in the padded input.
fn out_len(
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Result<usize> {
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(|| invalid(format!("{axis}: dilated kernel size overflows")))?;
    let padded = input + 2 * pad;
    if span > padded {
        return Err(invalid(format!(
            "{axis}: kernel {kernel} with dilation {dilation} spans {span}, larger than the padded input {padded} ({input} + 2 x {pad})"
        )));
    }
    Ok((padded - span) / stride + 1)
}

impl Conv2dGeometry {
    /// Validates an input shape, a weight shape and parameters.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if the weight's input channels are not
    /// `in_channels / groups`; [`KernelError::InvalidArgument`] for zero sizes, strides or
    /// dilations, channels that groups do not divide, or a kernel larger than the padded input.
    pub fn new(input: [usize; 4], weight: [usize; 4], params: Conv2dParams) -> Result<Self> {
        let [batch, in_channels, in_h, in_w] = input;
        let [out_channels, group_in, kernel_h, kernel_w] = weight;
        let Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
        } = params;
        if groups == 0 || stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(invalid(format!(
                "groups, stride and dilation must be at least 1, got groups {groups}, stride {stride:?}, dilation {dilation:?}"
            )));
        }
        if kernel_h == 0 || kernel_w == 0 || out_channels == 0 || in_channels == 0 {
            return Err(invalid(format!(
                "empty weight {weight:?} or input {input:?}"
            )));
        }
        if in_channels % groups != 0 || out_channels % groups != 0 {
            return Err(invalid(format!(
                "{groups} groups must divide both the {in_channels} input and {out_channels} output channels"
            )));
        }
        if group_in != in_channels / groups {
            return Err(KernelError::ShapeMismatch {
                op: OP,
                detail: format!(
                    "input {input:?} with {groups} group(s) needs weight [{out_channels}, {}, kh, kw], got {weight:?}",
                    in_channels / groups
                ),
            });
        }
        let out_h = out_len("height", in_h, kernel_h, stride.0, padding.0, dilation.0)?;
        let out_w = out_len("width", in_w, kernel_w, stride.1, padding.1, dilation.1)?;
        let geometry = Self {
            batch,
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h,
            kernel_w,
            out_h,
            out_w,
            params,
        };
        // Every buffer length must fit in usize.
        for shape in [
            geometry.input_shape(),
            geometry.weight_shape(),
            geometry.output_shape(),
        ] {
            shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| invalid(format!("shape {shape:?} has too many elements")))?;
        }
        Ok(geometry)
    }

    /// `[batch, in_channels, in_h, in_w]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }

    /// `[out_channels, in_channels / groups, kernel_h, kernel_w]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels / self.params.groups,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// `[batch, out_channels, out_h, out_w]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
    }

    /// Input channels per group.
    pub(crate) fn group_in(&self) -> usize {
        self.in_channels / self.params.groups
    }

    /// Output channels per group.
    pub(crate) fn group_out(&self) -> usize {
        self.out_channels / self.params.groups
    }

    /// Rows of the lowered input matrix of one group: `group_in * kernel_h * kernel_w`.
    pub(crate) fn col_rows(&self) -> usize {
        self.group_in() * self.kernel_h * self.kernel_w
    }

    /// Output positions per image, `out_h * out_w`.
    pub(crate) fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Input pixels per channel plane, `in_h * in_w`.
    pub(crate) fn plane(&self) -> usize {
        self.in_h * self.in_w
    }

    /// A 1x1, stride-1, unpadded convolution is a plain matrix product per image.
    pub(crate) fn is_pointwise(&self) -> bool {
        let p = self.params;
        self.kernel_h == 1 && self.kernel_w == 1 && p.stride == (1, 1) && p.padding == (0, 0)
    }

    /// Multiply-accumulates of one forward pass.
    pub fn macs(&self) -> usize {
        self.batch * self.out_channels * self.positions() * self.col_rows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_gives_six_28x28_maps() {
        // A 32x32x3 image convolved with six 5x5x3 filters: (32 - 5) / 1 + 1 = 28.
        let g = Conv2dGeometry::new([1, 3, 32, 32], [6, 3, 5, 5], Conv2dParams::default()).unwrap();
        assert_eq!(g.output_shape(), [1, 6, 28, 28]);
    }

    #[test]
    fn alexnet_conv1_output_is_55x55() {
        // (224 + 2*2 - 11) / 4 + 1 = 55.
        let g = Conv2dGeometry::new(
            [2, 3, 224, 224],
            [64, 3, 11, 11],
            Conv2dParams::default().stride(4).padding(2),
        )
        .unwrap();
        assert_eq!(g.output_shape(), [2, 64, 55, 55]);
    }

    /// The error of `Conv2dGeometry::new`, which must fail with the given variant and a
    /// message containing `needle`.
    fn rejection(input: [usize; 4], weight: [usize; 4], p: Conv2dParams) -> KernelError {
        match Conv2dGeometry::new(input, weight, p) {
            Ok(g) => panic!("{input:?} * {weight:?} with {p:?} was accepted: {g:?}"),
            Err(e) => e,
        }
    }

    fn assert_invalid(e: KernelError, needle: &str) {
        match &e {
            KernelError::InvalidArgument {
                op: "conv2d",
                detail,
            } if detail.contains(needle) => {}
            other => panic!("expected conv2d InvalidArgument containing {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_configurations() {
        let p = Conv2dParams::default();
        // Kernel larger than the padded input.
        assert_invalid(
            rejection([1, 1, 3, 3], [1, 1, 5, 5], p),
            "height: kernel 5 with dilation 1 spans 5, larger than the padded input 3",
        );
        assert!(Conv2dGeometry::new([1, 1, 3, 3], [1, 1, 5, 5], p.padding(1)).is_ok());
        // Dilation makes a 3x3 kernel span 5.
        assert_invalid(
            rejection([1, 1, 4, 4], [1, 1, 3, 3], p.dilation(2)),
            "kernel 3 with dilation 2 spans 5, larger than the padded input 4",
        );
        assert_invalid(
            rejection([1, 1, 4, 4], [1, 1, 3, 3], p.stride(0)),
            "stride and dilation must be at least 1",
        );
        // 3 groups do not divide 4 input channels.
        assert_invalid(
            rejection([1, 4, 4, 4], [6, 2, 3, 3], p.groups(3)),
            "3 groups must divide both the 4 input and 6 output channels",
        );
        // 2 groups of 4 channels need 2 input channels per filter, not 3.
        match rejection([1, 4, 4, 4], [6, 3, 3, 3], p.groups(2)) {
            KernelError::ShapeMismatch {
                op: "conv2d",
                detail,
            } => assert!(
                detail.contains("needs weight [6, 2, kh, kw], got [6, 3, 3, 3]"),
                "{detail}"
            ),
            other => panic!("expected conv2d ShapeMismatch, got {other:?}"),
        }
        assert!(Conv2dGeometry::new([1, 4, 4, 4], [6, 2, 3, 3], p.groups(2)).is_ok());
    }
}
