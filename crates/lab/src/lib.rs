//! # saturn-lab
//!
//! The experiment runner behind `cargo xtask experiment`: each experiment turns a published
//! claim into one command that trains or probes models, writes `config.toml`, `metrics.csv`,
//! figures and `summary.json` into its run directory, and computes whether each claim holds.
//!
//! - [`config`]: typed configs with `quick` / `full` presets and TOML overrides;
//! - [`train`]: the shared training loop (checkpoints, bit-identical resume, divergence);
//! - [`summary`], [`metadata`], [`metrics`], [`plot`], [`report`]: results;
//! - [`experiments`]: the registry.

pub mod config;
pub mod error;
pub mod experiments;
pub mod metadata;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run_dir;
pub mod summary;
pub mod train;

use std::path::Path;
use std::time::Instant;

pub use error::{LabError, Result};

use crate::config::Preset;
use crate::experiments::{Experiment, ExperimentCtx};
use crate::metadata::Metadata;
use crate::run_dir::RunDir;
use crate::summary::Summary;

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub preset: Preset,
    pub seeds: Vec<u64>,
    pub config_file: Option<std::path::PathBuf>,
    pub out: std::path::PathBuf,
    pub resume: bool,
}

/// Runs one experiment into `out/NAME`, writes its `summary.json`, and returns the summary.
pub fn run_experiment(exp: &Experiment, opts: &RunOptions) -> Result<Summary> {
    let started = Instant::now();
    let metadata = Metadata::collect();
    let dir = RunDir::create(&opts.out, exp.name)?;
    let ctx = ExperimentCtx {
        preset: opts.preset,
        seeds: opts.seeds.clone(),
        config_file: opts.config_file.clone(),
        dir: dir.clone(),
        resume: opts.resume,
    };
    let claims = (exp.run)(&ctx)?;
    let summary = Summary {
        experiment: exp.name.to_string(),
        preset: opts.preset,
        seeds: claims.seeds.unwrap_or_else(|| opts.seeds.clone()),
        wall_seconds: started.elapsed().as_secs_f64(),
        resumed: opts.resume,
        claims: claims.list,
        metadata,
    };
    dir.write_json("summary.json", &summary)?;
    Ok(summary)
}

/// One line per claim: ✓ or ✗, the statement, the id.
pub fn print_summary(s: &Summary) {
    println!("{} ({}, {:.0} s):", s.experiment, s.preset.name(), s.wall_seconds);
    for c in &s.claims {
        println!("  [{}] {} ({})", if c.holds { "holds" } else { "FAILS" }, c.statement, c.id);
    }
}

/// Writes the report from `results` into `docs`.
pub fn report(results: &Path, docs: &Path) -> Result<usize> {
    report::write_report(results, docs)
}
