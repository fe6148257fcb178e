//! The one error type of saturn-optim.
//!
//! Every public function checks its arguments and returns an `Err` saying which value was wrong
//! and why; nothing panics on bad input (a bad hyper-parameter, a gradient of the wrong shape, a
//! state file of another optimizer, a missing file).

use std::path::PathBuf;

use saturn_tensor::TensorError;

/// What went wrong in an optimizer, schedule, clipping or state file operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptimError {
    /// A hyper-parameter outside its valid range (negative lr, β outside [0, 1), …).
    #[error("{owner}: invalid {name} = {value}: {reason}")]
    InvalidHyperParameter {
        /// Who refused it: `"adam"`, `"schedule"`, `"clip_grad_norm"`, a group pattern, …
        owner: String,
        /// The hyper-parameter's name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What a valid value is.
        reason: &'static str,
    },
    /// Any other invalid configuration (an empty group pattern, an unknown optimizer kind, …).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Two parameters with the same name.
    #[error("parameter name {name:?} appears twice")]
    DuplicateName { name: String },
    /// The same tensor given twice under two names (it would be stepped twice).
    #[error("parameters {first:?} and {second:?} are the same tensor")]
    DuplicateTensor { first: String, second: String },
    /// A parameter that is not a leaf tensor, so it cannot be changed in place.
    #[error("parameter {name:?} is not a leaf tensor (it was computed by an operation)")]
    NotALeaf { name: String },
    /// A gradient whose shape differs from its parameter's.
    #[error("parameter {name:?} has shape {param:?} but its gradient has shape {grad:?}")]
    GradShape { name: String, param: Vec<usize>, grad: Vec<usize> },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state that cannot be loaded into this optimizer: not a state file, another format
    /// version, another optimizer kind or element type, a missing or extra parameter or buffer,
    /// a shape mismatch. The message says which.
    #[error("optimizer state does not fit: {0}")]
    StateMismatch(String),
    /// An error about a state file, with the file's path.
    #[error("{path}: {source}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: Box<OptimError>,
    },
    /// An error from a tensor operation.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// `Result` with [`OptimError`] as the error.
pub type Result<T, E = OptimError> = std::result::Result<T, E>;

impl OptimError {
    pub(crate) fn state(reason: impl Into<String>) -> Self {
        OptimError::StateMismatch(reason.into())
    }

    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            // I/O errors already carry their path.
            e @ (OptimError::Io { .. } | OptimError::StateFile { .. }) => e,
            e => OptimError::StateFile { path: path.into(), source: Box::new(e) },
        }
    }
}

/// `Ok` when `ok`, else the hyper-parameter `name` of `owner` refused with `reason`.
fn require(
    ok: bool,
    owner: &str,
    name: &'static str,
    value: f64,
    reason: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::InvalidHyperParameter { owner: owner.to_string(), name, value, reason })
    }
}

/// Checks that `value` is finite and ≥ 0 (learning rates, weight decay, ε, momentum, …).
pub(crate) fn check_non_negative(owner: &str, name: &'static str, value: f64) -> Result<()> {
    require(value.is_finite() && value >= 0.0, owner, name, value, "must be finite and ≥ 0")
}

/// Checks that a decay rate β lies in [0, 1).
pub(crate) fn check_beta(owner: &str, name: &'static str, value: f64) -> Result<()> {
    require((0.0..1.0).contains(&value), owner, name, value, "must lie in [0, 1)")
}

/// Checks the hyper-parameters of the Adam family (Adam, AdamW, RAdam): β₁, β₂ in [0, 1), ε and
/// λ finite and ≥ 0.
pub(crate) fn check_adam_family(owner: &str, betas: [f64; 2], eps: f64, wd: f64) -> Result<()> {
    check_beta(owner, "betas[0]", betas[0])?;
    check_beta(owner, "betas[1]", betas[1])?;
    check_non_negative(owner, "eps", eps)?;
    check_non_negative(owner, "weight_decay", wd)
}
