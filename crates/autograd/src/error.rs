//! The one error type of the autograd crate.

use std::fmt;

use thiserror::Error;
use ventral_kernels::KernelError;

use crate::shape::Shape;

/// Which pass of an op produced a non-finite value (see [`crate::AnomalyMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The op's forward computation.
    Forward,
    /// The op's backward (gradient) computation.
    Backward,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
        })
    }
}

/// What can go wrong in a differentiable op, in `backward` or in `gradcheck`.
///
/// Every variant names the op involved; shape problems name the shapes, so a caller's error
/// reads like `matmul: lhs [2, 3] and rhs [4, 5] do not agree on the inner dimension`.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Two operands whose shapes do not fit together.
    #[error("{op}: lhs {lhs} and rhs {rhs} {reason}")]
    ShapeMismatch {
        /// The op whose operands disagree.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Shape,
        /// Shape of the second operand.
        rhs: Shape,
        /// What was expected of them.
        reason: String,
    },
    /// A shape or argument the op does not accept (an axis out of range, a reshape to a
    /// different element count, a probability outside [0, 1], …); `detail` names the shape.
    #[error("{op}: {detail}")]
    InvalidArgument {
        /// The op that rejected the argument.
        op: &'static str,
        /// What was wrong, with the offending values and shapes.
        detail: String,
    },
    /// An error reported by a kernel (it names its own op and shapes).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Anomaly mode caught an op producing NaN or ±inf.
    #[error(
        "anomaly: {op}{} produced {value} at element {index} in its {phase} pass",
        path.as_ref().map(|p| format!(" (in {p})")).unwrap_or_default()
    )]
    Anomaly {
        /// The op that produced the value.
        op: &'static str,
        /// The scope path the op ran in (see [`crate::Scope`]), e.g. a layer path.
        path: Option<String>,
        /// Forward or backward.
        phase: Phase,
        /// Flat index of the first non-finite element.
        index: usize,
        /// The non-finite value.
        value: f32,
    },
    /// `backward` could not run (non-scalar root, graph already freed, …).
    #[error("backward: {detail}")]
    Backward {
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// An [`Error::InvalidArgument`].
    pub(crate) fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            detail: detail.into(),
        }
    }

    /// An [`Error::ShapeMismatch`].
    pub(crate) fn mismatch(
        op: &'static str,
        lhs: &Shape,
        rhs: &Shape,
        reason: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            reason: reason.into(),
        }
    }
}

/// The result type of every fallible autograd function.
pub type Result<T> = std::result::Result<T, Error>;
