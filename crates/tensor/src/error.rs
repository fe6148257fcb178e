//! The one error type of saturn-tensor.
//!
//! Every public operation checks its arguments and returns an `Err` naming the operation and the
//! offending shapes or values; no public operation panics on bad input.

/// What went wrong in a tensor operation. The `op` field names the operation that refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// Two shapes that the operation needs to agree (or broadcast) do not.
    #[error("{op}: shapes {lhs:?} and {rhs:?} are incompatible")]
    ShapeMismatch { op: &'static str, lhs: Vec<usize>, rhs: Vec<usize> },
    /// An axis outside `-ndim..ndim`.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {ndim}")]
    AxisOutOfRange { op: &'static str, axis: isize, ndim: usize },
    /// An index outside `0..size`.
    #[error("{op}: index {index} is out of bounds for an axis of size {size}")]
    IndexOutOfBounds { op: &'static str, index: usize, size: usize },
    /// The data does not have as many elements as the shape asks for.
    #[error("{op}: shape {shape:?} needs {expected} elements, got {got}")]
    ElementCount { op: &'static str, shape: Vec<usize>, expected: usize, got: usize },
    /// A tensor with more than one element where a scalar is needed.
    #[error("{op}: expected a single-element tensor, got shape {shape:?}")]
    NotScalar { op: &'static str, shape: Vec<usize> },
    /// Differentiation was asked of an output that is not connected to any tracked input.
    #[error(
        "{op}: the output does not require grad (was it computed under no_grad, or from constants only?)"
    )]
    NotTracked { op: &'static str },
    /// Any other invalid argument, with a sentence saying which and why.
    #[error("{op}: {reason}")]
    InvalidArgument { op: &'static str, reason: String },
}

/// `Result` with [`TensorError`] as the error.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;

impl TensorError {
    pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        TensorError::InvalidArgument { op, reason: reason.into() }
    }
}
