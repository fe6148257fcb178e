//! The experiments: each turns a published claim into one command with a computed verdict.

use std::path::PathBuf;

use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::run_dir::RunDir;
use crate::summary::Claims;

pub mod data;
pub mod lm_baseline;

/// What an experiment is given.
pub struct ExperimentCtx {
    pub preset: Preset,
    /// Every seed is run and counted: no picking.
    pub seeds: Vec<u64>,
    /// A TOML file overriding fields of the preset.
    pub config_file: Option<PathBuf>,
    pub dir: RunDir,
    pub resume: bool,
}

/// One experiment: a name, a one-line description, and its run.
pub struct Experiment {
    pub name: &'static str,
    pub about: &'static str,
    /// Runs the experiment in `ctx.dir` and returns its checked claims.
    pub run: fn(&ExperimentCtx) -> Result<Claims>,
}

/// Every experiment, in the order `all` runs them.
pub const EXPERIMENTS: &[Experiment] = &[Experiment {
    name: "lm-baseline",
    about: "char-level LM on tiny-shakespeare, Post-LN and Pre-LN: the loss falls below the unigram entropy",
    run: lm_baseline::run,
}];

/// The experiment called `name`.
pub fn find(name: &str) -> Result<&'static Experiment> {
    EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| LabError::UnknownExperiment(name.to_string()))
}
