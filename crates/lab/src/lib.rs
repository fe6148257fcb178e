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
//! - [`summary`], [`metadata`], [`metrics`], [`plot`], [`report`](mod@report): results;
//! - [`cells`]: an experiment's work as numbered, independent cells (`--cell`, `--merge-only`,
//!   `saturn cells`, `saturn sweep`);
//! - [`experiments`]: the registry, and each experiment's method;
//! - [`tasks`]: what experiments share (data, training tasks, values over runs).

pub mod cell_store;
pub mod cells;
pub mod claim;
pub mod config;
pub mod error;
pub mod experiments;
pub mod fuzz;
pub mod lock;
pub mod metadata;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run_dir;
pub mod stats;
pub mod summary;
pub mod sweep;
pub mod tasks;
pub mod tensorboard;
pub mod train;

use std::path::Path;
use std::time::Instant;

pub use error::{LabError, Result};

use crate::cells::{CellInfo, CellMode, CellState, Stop};
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
    /// `--merge-only`: make the summary from the cells there, computing none.
    pub merge_only: bool,
    /// With `merge_only`: merge the seeds whose cells are all there, marked partial, instead
    /// of refusing.
    pub allow_partial: bool,
    /// Take over a run's or cell's lock held by a process on another host.
    pub break_lock: bool,
    /// The cell store to take finished cells from ([`cell_store`]); `None`: compute every cell.
    pub cell_store: Option<std::path::PathBuf>,
}

impl RunOptions {
    /// A run of `preset` with exactly `seeds` into `out`: the preset's config as it is, nothing
    /// resumed, merged or taken from a cell store. Change a field with struct update syntax,
    /// e.g. `RunOptions { config_file: Some(file), ..RunOptions::new(Preset::Quick, vec![0], out) }`.
    pub fn new(preset: Preset, seeds: Vec<u64>, out: impl Into<std::path::PathBuf>) -> Self {
        RunOptions {
            preset,
            seeds,
            extend_seeds: false,
            config_file: None,
            out: out.into(),
            resume: false,
            merge_only: false,
            allow_partial: false,
            break_lock: false,
            cell_store: None,
        }
    }

    /// Every seed the run covers.
    pub fn seeds_for(&self, exp: &Experiment) -> Vec<u64> {
        if self.extend_seeds {
            tasks::seeds::seeds_for(&self.seeds, exp.seeds.count(self.preset))
        } else {
            self.seeds.clone()
        }
    }
}

fn context(
    exp: &Experiment,
    opts: &RunOptions,
    seeds: Vec<u64>,
    mode: CellMode,
) -> Result<ExperimentCtx> {
    Ok(ExperimentCtx {
        preset: opts.preset,
        seeds,
        config_file: opts.config_file.clone(),
        dir: RunDir::create(&opts.out, exp.name)?,
        resume: opts.resume,
        cell_state: CellState {
            break_lock: opts.break_lock,
            store: opts.cell_store.clone(),
            ..CellState::new(mode)
        },
    })
}

/// The cells of `exp` under `opts`, in order: what `--cell I` indexes.
pub fn plan_cells(exp: &Experiment, opts: &RunOptions) -> Result<Vec<CellInfo>> {
    let ctx = context(exp, opts, opts.seeds_for(exp), CellMode::Plan)?;
    match (exp.run)(&ctx) {
        Err(LabError::Stop(Stop::Planned(cells))) => Ok(cells),
        Err(e) => Err(e),
        Ok(_) => Err(LabError::Run(format!("{}: lists no cells", exp.name))),
    }
}

/// Runs cell `index` of `exp` (with `opts.resume`, a finished cell is left as it is) and
/// writes only its own files. Returns its label and whether it was finished already.
pub fn run_cell(exp: &Experiment, opts: &RunOptions, index: usize) -> Result<(String, bool)> {
    let ctx = context(exp, opts, opts.seeds_for(exp), CellMode::Only(index))?;
    match (exp.run)(&ctx) {
        Err(LabError::Stop(Stop::CellFinished { label, already })) => Ok((label, already)),
        Err(e) => Err(e),
        Ok(_) => Err(LabError::Run(format!("{}: lists no cells", exp.name))),
    }
}

/// Runs one experiment into `out/NAME` (or, with `merge_only`, merges its finished cells),
/// writes its `summary.json`, and returns the summary.
pub fn run_experiment(exp: &Experiment, opts: &RunOptions) -> Result<Summary> {
    let started = Instant::now();
    let metadata = Metadata::collect();
    let preset_seeds = exp.seeds.count(opts.preset);
    let mut seeds = opts.seeds_for(exp);
    let mode = if opts.merge_only { CellMode::Merge } else { CellMode::All };
    // one writer per run directory (cells being computed elsewhere hold only their own locks)
    let _lock =
        lock::Lock::acquire(&RunDir::create(&opts.out, exp.name)?.file("lock"), opts.break_lock)?;
    let mut missing = Vec::new();
    let (ctx, claims) = loop {
        let ctx = context(exp, opts, seeds.clone(), mode)?;
        match (exp.run)(&ctx) {
            Ok(claims) => break (ctx, claims),
            Err(LabError::MissingCells(labels)) if opts.allow_partial && missing.is_empty() => {
                // keep the seeds whose cells are all there
                let plan = plan_cells(
                    exp,
                    &RunOptions { seeds: seeds.clone(), extend_seeds: false, ..opts.clone() },
                )?;
                let short: Vec<u64> =
                    plan.iter().filter(|c| labels.contains(&c.label)).map(|c| c.seed).collect();
                seeds.retain(|s| !short.contains(s));
                if seeds.is_empty() {
                    return Err(LabError::MissingCells(labels));
                }
                missing = labels;
            }
            Err(e) => return Err(e),
        }
    };
    let dir = ctx.dir.clone();
    plot::claims_chart(&dir, "claims", &claims.list)?;
    let mut cells = ctx.cell_state.record();
    cells.missing = missing;
    let summary = Summary {
        schema: summary::SCHEMA,
        experiment: exp.name.to_string(),
        preset: opts.preset,
        seeds,
        preset_seeds,
        partial: !cells.missing.is_empty(),
        wall_seconds: started.elapsed().as_secs_f64(),
        resumed: opts.resume,
        claims: claims.list,
        metadata,
        cells: (cells.count > 0).then_some(cells),
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
/// fewer seeds than their preset asks for (marked partial) instead of refusing them. First,
/// every finished full-preset cell under `results` goes into the cell store
/// (`docs/results/cells`, [`cell_store`]), whether or not its run is merged yet.
pub fn report(results: &Path, docs: &Path, allow_partial: bool) -> Result<usize> {
    for cell in cell_store::record(results, &cell_store::default_store(docs))? {
        println!("report: stored cell {cell}");
    }
    report::write_report(results, docs, allow_partial)
}
