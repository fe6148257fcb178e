//! The error type of saturn-layers.

use saturn_tensor::TensorError;

/// What went wrong building, running, initialising or loading a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A tensor operation refused its inputs.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A configuration value is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Config(String),
    /// A batch does not fit the model (shape, ids out of range, masks).
    #[error("invalid batch: {0}")]
    Batch(String),
    /// A checkpoint lacks a tensor the model needs.
    #[error("checkpoint {path}: missing tensor `{name}`")]
    MissingTensor { path: String, name: String },
    /// A checkpoint tensor has the wrong shape.
    #[error("checkpoint {path}: tensor `{name}` has shape {found:?}, the model needs {expected:?}")]
    WrongShape { path: String, name: String, expected: Vec<usize>, found: Vec<usize> },
    /// A checkpoint tensor of a parameter is not floating-point (e.g. integer ids).
    #[error(
        "checkpoint {path}: tensor `{name}` has dtype {found}, a parameter needs a float (F16, BF16, F32, F64)"
    )]
    WrongDtype { path: String, name: String, found: String },
    /// A checkpoint holds tensors the model does not have.
    #[error("checkpoint {path}: unexpected tensors {names:?}")]
    UnexpectedTensors { path: String, names: Vec<String> },
    /// A checkpoint file is unreadable, truncated or corrupted.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// `Result` with [`LayerError`].
pub type Result<T, E = LayerError> = std::result::Result<T, E>;

pub(crate) fn config_err(msg: impl Into<String>) -> LayerError {
    LayerError::Config(msg.into())
}

pub(crate) fn batch_err(msg: impl Into<String>) -> LayerError {
    LayerError::Batch(msg.into())
}
