//! # saturn-lab
//!
//! The experiment runner behind `cargo xtask experiment`: each experiment turns a published
//! claim into one command that trains or probes models, writes `config.toml`, `metrics.csv`,
//! figures and `summary.json` into its run directory, and computes whether each claim holds.
//!
//! - [`config`]: typed configs with `quick` / `full` presets and TOML overrides;
//! - [`train`]: the shared training loop (checkpoints, bit-identical resume, divergence);
//! - [`claim`], [`stats`]: claims with per-seed evidence, intervals, gates and three-valued
//!   verdicts;
//! - [`summary`], [`metadata`], [`metrics`], [`plot`], [`report`]: results;
//! - [`experiments`]: the registry.

pub mod claim;
pub mod config;
pub mod error;
pub mod experiments;
pub mod metadata;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run_dir;
pub mod stats;
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
    /// The command's seeds.
    pub seeds: Vec<u64>,
    /// Extend `seeds` to the count the preset asks for (the integers after the largest given
    /// one); false runs exactly `seeds` (an explicit `--seeds` list).
    pub extend_seeds: bool,
    pub config_file: Option<std::path::PathBuf>,
    pub out: std::path::PathBuf,
    pub resume: bool,
}

/// Runs one experiment into `out/NAME`, writes its `summary.json`, and returns the summary.
pub fn run_experiment(exp: &Experiment, opts: &RunOptions) -> Result<Summary> {
    let started = Instant::now();
    let metadata = Metadata::collect();
    let dir = RunDir::create(&opts.out, exp.name)?;
    let preset_seeds = exp.seeds.count(opts.preset);
    let seeds = if opts.extend_seeds {
        experiments::schemes::seeds_for(&opts.seeds, preset_seeds)
    } else {
        opts.seeds.clone()
    };
    let ctx = ExperimentCtx {
        preset: opts.preset,
        seeds: seeds.clone(),
        config_file: opts.config_file.clone(),
        dir: dir.clone(),
        resume: opts.resume,
    };
    let claims = (exp.run)(&ctx)?;
    plot::claims_chart(&dir, "claims", &claims.list)?;
    let summary = Summary {
        schema: summary::SCHEMA,
        experiment: exp.name.to_string(),
        preset: opts.preset,
        seeds,
        preset_seeds,
        partial: false,
        wall_seconds: started.elapsed().as_secs_f64(),
        resumed: opts.resume,
        claims: claims.list,
        metadata,
    };
    dir.write_json("summary.json", &summary)?;
    Ok(summary)
}

/// One line per claim: its verdict, the statement, the id, and why.
pub fn print_summary(s: &Summary) {
    let (holds, fails, open) = s.counts();
    println!(
        "{} ({}, seeds {:?}, {:.0} s): {holds} hold, {fails} fail, {open} inconclusive",
        s.experiment,
        s.preset.name(),
        s.seeds,
        s.wall_seconds
    );
    for c in &s.claims {
        let verdict = match c.outcome() {
            claim::Verdict::Holds => "holds",
            claim::Verdict::Fails => "FAILS",
            claim::Verdict::Inconclusive => "inconclusive",
        };
        println!("  [{verdict}] {} ({}): {}", c.statement, c.id, c.reason);
    }
}

/// Writes the report from `results` into `docs`; `allow_partial` folds in `--full` runs with
/// fewer seeds than their preset asks for (marked partial) instead of refusing them.
pub fn report(results: &Path, docs: &Path, allow_partial: bool) -> Result<usize> {
    report::write_report(results, docs, allow_partial)
}
