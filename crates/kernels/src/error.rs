//! The one error type of the kernels crate.

use thiserror::Error;

/// What can go wrong when a kernel is handed bad arguments.
///
/// Kernels validate their inputs once, up front, and report problems here instead of
/// panicking or reading out of bounds. Every variant names the operation involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    /// A strided view would reach past the end of its slice.
    #[error(
        "{op}: a {rows}x{cols} view with strides ({row_stride}, {col_stride}) needs {needed} elements, but the slice has {len}"
    )]
    ViewOutOfBounds {
        /// The operation that built the view.
        op: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Distance in elements between consecutive rows.
        row_stride: usize,
        /// Distance in elements between consecutive columns.
        col_stride: usize,
        /// Elements the view needs.
        needed: usize,
        /// Elements the slice has.
        len: usize,
    },
    /// A writable view whose strides make two of its elements share memory.
    #[error(
        "{op}: strides ({row_stride}, {col_stride}) make elements of a {rows}x{cols} output view overlap"
    )]
    OverlappingOutput {
        /// The operation that built the view.
        op: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Distance in elements between consecutive rows.
        row_stride: usize,
        /// Distance in elements between consecutive columns.
        col_stride: usize,
    },
    /// Operand shapes that do not fit together.
    #[error("{op}: {detail}")]
    ShapeMismatch {
        /// The operation whose operands disagree.
        op: &'static str,
        /// Both shapes and what was expected of them.
        detail: String,
    },
    /// An argument outside what the operation accepts (a zero stride, a kernel larger than
    /// its padded input, channels that do not divide into groups, …).
    #[error("{op}: {detail}")]
    InvalidArgument {
        /// The operation that rejected the argument.
        op: &'static str,
        /// What was wrong, with the offending values.
        detail: String,
    },
    /// An instruction set was requested that this CPU does not have.
    #[error("{requested} is not supported by this CPU")]
    UnsupportedIsa {
        /// The instruction set that was asked for.
        requested: &'static str,
    },
}

/// The result type of every fallible kernel.
pub type Result<T> = std::result::Result<T, KernelError>;
