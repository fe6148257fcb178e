//! The lab's error type: every failure is one readable line at the CLI.

/// What stopped an experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    #[error(transparent)]
    Tensor(#[from] saturn_tensor::TensorError),
    #[error(transparent)]
    Layers(#[from] saturn_layers::LayerError),
    #[error(transparent)]
    Optim(#[from] saturn_optim::OptimError),
    #[error(transparent)]
    Data(#[from] saturn_datasets::DatasetError),
    #[error(transparent)]
    File(#[from] saturn_tensor::io::FileError),
    #[error(transparent)]
    Saturation(#[from] saturn_saturation::SaturationError),
    #[error(transparent)]
    Dynamics(#[from] saturn_dynamics::DynamicsError),
    /// A config file or value is wrong (unknown key, bad value).
    #[error("config: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A run directory holds something unexpected (e.g. a checkpoint of another config).
    #[error("{0}")]
    Run(String),
    /// The experiment name is not known.
    #[error("unknown experiment `{0}` (try `saturn experiment list`)")]
    UnknownExperiment(String),
    /// Another process holds the run's or the cell's lock.
    #[error("{path}: held by {holder}; {hint}")]
    Locked { path: String, holder: String, hint: String },
    /// A merge found cells not yet computed (their labels, in order).
    #[error("{} cell(s) not computed yet: {}; run them with `--cell`, or merge what is there with `--allow-partial`", .0.len(), .0.join(", "))]
    MissingCells(Vec<String>),
    /// Not a failure: a cell mode ended the run early (see [`crate::cells::Stop`]).
    #[error("stopped early: {0:?}")]
    Stop(crate::cells::Stop),
    /// Drawing a figure failed.
    #[error("figure {path}: {reason}")]
    Plot { path: String, reason: String },
}

/// `Result` with [`LabError`].
pub type Result<T, E = LabError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io { path: path.display().to_string(), source }
}
