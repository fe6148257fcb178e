//! The error type of saturn-saturation.

use saturn_layers::LayerError;
use saturn_tensor::TensorError;

/// What stopped a measurement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaturationError {
    /// A tensor operation refused its inputs.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A model refused its batch or configuration.
    #[error(transparent)]
    Layers(#[from] LayerError),
    /// Two inputs that must agree (parameter names, shapes, lengths) do not, or an input is
    /// outside the range a statistic is defined on.
    #[error("{op}: {reason}")]
    Invalid { op: &'static str, reason: String },
    /// A least-squares problem could not be solved (LAPACK's error).
    #[error("least squares: {0}")]
    LeastSquares(String),
}

/// `Result` with [`SaturationError`].
pub type Result<T, E = SaturationError> = std::result::Result<T, E>;

pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> SaturationError {
    SaturationError::Invalid { op, reason: reason.into() }
}
