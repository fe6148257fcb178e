//! The one error type of saturn-dynamics.

use saturn_layers::LayerError;
use saturn_tensor::TensorError;

/// What stopped a measurement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamicsError {
    /// A tensor operation refused its inputs.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A model's forward pass refused its inputs.
    #[error(transparent)]
    Layers(#[from] LayerError),
    /// LAPACK could not diagonalize a matrix.
    #[error("{op}: eigendecomposition failed: {reason}")]
    Linalg { op: &'static str, reason: String },
    /// An argument is out of range or inconsistent, with a sentence saying which and why.
    #[error("{op}: {reason}")]
    Invalid { op: &'static str, reason: String },
}

/// `Result` with [`DynamicsError`].
pub type Result<T, E = DynamicsError> = std::result::Result<T, E>;

pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> DynamicsError {
    DynamicsError::Invalid { op, reason: reason.into() }
}
