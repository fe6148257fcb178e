//! Cells: an experiment's work as a numbered list of independent units, so that a sweep can run
//! them anywhere (one process each, a Slurm job array, GNU parallel) and merge them afterwards.
//!
//! An experiment lists its cells (one trained model, one measured init, …) and hands them to
//! [`ExperimentCtx::cells`] with the function that computes one. What happens then depends on
//! the run's [`CellMode`]:
//!
//! | mode | what `cells` does | what the run writes |
//! |---|---|---|
//! | [`CellMode::All`] (a plain run) | computes every cell (with `--resume`, loads the finished ones) | everything |
//! | [`CellMode::Only`] (`--cell I`) | computes cell I, then ends the run ([`Stop::CellFinished`]) | only `cells/LABEL/` |
//! | [`CellMode::Merge`] (`--merge-only`) | loads every cell; a missing one is an error naming them all | the summary, figures, tables |
//! | [`CellMode::Plan`] (`saturn cells`) | records the list, then ends the run ([`Stop::Planned`]) | nothing |
//!
//! Every path, a plain run included, reads each cell's output back from its file
//! (`cells/LABEL/cell.ron`, written atomically and last), so a merge of cells computed by many
//! processes and a single-process run see the same bits. The file is RON, not JSON: a diverged
//! run's NaN losses must survive the round trip, and RON writes every float exactly.
//!
//! Order and names: cells are sorted by seed (stable), so adding seeds appends cells and never
//! renumbers the existing ones; a cell's files are keyed by its label, never by its index. Each
//! cell's record holds the config it was computed with (the experiment passes the part of its
//! config the cell depends on): a cell computed under another config is refused, not merged.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cell_store::Restored;
use crate::error::{LabError, Result, io_err};
use crate::experiments::ExperimentCtx;
use crate::lock::Lock;
use crate::run_dir::RunDir;

/// The subdirectory of a run directory that holds its cells.
pub const CELLS_DIR: &str = "cells";
/// The file that marks a cell finished, with its output.
pub const CELL_FILE: &str = "cell.ron";

/// One independent unit of an experiment's work, described by `spec`.
#[derive(Debug, Clone)]
pub struct Cell<S> {
    /// The seed the cell belongs to (cells are ordered by it).
    pub seed: u64,
    /// A unique name, used for its directory: `[a-z0-9._-]`, e.g. `post-ln-n12-seed3`.
    pub label: String,
    /// A rough estimate of its cost in core-minutes at one thread (0 when unknown).
    pub minutes: f64,
    pub spec: S,
}

impl<S> Cell<S> {
    /// A cell with an unknown cost.
    pub fn new(seed: u64, label: impl Into<String>, spec: S) -> Self {
        Cell { seed, label: label.into(), minutes: 0.0, spec }
    }

    /// The same cell with an estimated cost in core-minutes.
    pub fn minutes(mut self, minutes: f64) -> Self {
        self.minutes = minutes;
        self
    }
}

/// A cell as `saturn cells` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellInfo {
    pub index: usize,
    pub label: String,
    pub seed: u64,
    /// Estimated core-minutes at one thread (0: unknown).
    pub minutes: f64,
}

/// What [`ExperimentCtx::cells`] does with the cells it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellMode {
    /// Compute every cell (a plain run).
    All,
    /// Compute only the cell with this index, then stop.
    Only(usize),
    /// Compute nothing: load every cell from its file.
    Merge,
    /// Compute nothing: record the list of cells, then stop.
    Plan,
}

impl CellMode {
    /// Whether the run writes experiment-level files (config, summary, tables, figures).
    pub fn writes_results(self) -> bool {
        matches!(self, CellMode::All | CellMode::Merge)
    }
}

/// How a cell mode ends a run early. Not a failure: the runner catches it.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// [`CellMode::Plan`]: the cells are listed.
    Planned(Vec<CellInfo>),
    /// [`CellMode::Only`]: the cell is computed (or was already).
    CellFinished { label: String, already: bool },
}

/// A finished cell's file: its output and where it came from.
#[derive(Debug, Serialize, Deserialize)]
struct CellRecord<T> {
    label: String,
    seed: u64,
    /// The config the cell depends on, as JSON.
    config: String,
    /// Wall time of the process that finished it (only the last part if it was resumed).
    wall_seconds: f64,
    /// `host:pid` of that process, and its Slurm job where there is one.
    process: String,
    /// The preset of the run that computed it (absent in records written before the field):
    /// the cell store keeps only full-preset cells ([`crate::cell_store`]).
    #[serde(default)]
    preset: Option<crate::config::Preset>,
    output: T,
}

/// Wall time and process of a finished cell, for the summary's record of how it was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellProvenance {
    pub label: String,
    pub wall_seconds: f64,
    pub process: String,
}

/// Where the cells came from, as the summary records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CellsRecord {
    /// How many cells the summary is made of.
    pub count: usize,
    /// How many distinct processes computed them.
    pub processes: usize,
    /// The sum of the cells' wall times (core time at one thread per process).
    pub cell_seconds: f64,
    /// Cells the run's seeds ask for that were not there (`--merge-only --allow-partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// The cell state an experiment run carries.
#[derive(Debug)]
pub struct CellState {
    pub mode: CellMode,
    /// Take over a cell's lock held by another host (`--break-lock`).
    pub break_lock: bool,
    /// Where finished cells of earlier runs are kept (`--cell-store`, [`crate::cell_store`]):
    /// a recorded cell with this run's config counts as finished.
    pub store: Option<PathBuf>,
    /// Provenance of every cell loaded in this run.
    pub(crate) loaded: RefCell<Vec<CellProvenance>>,
}

impl CellState {
    pub fn new(mode: CellMode) -> Self {
        CellState { mode, break_lock: false, store: None, loaded: RefCell::new(Vec::new()) }
    }

    /// What the loaded cells say about how the run was computed.
    pub fn record(&self) -> CellsRecord {
        let loaded = self.loaded.borrow();
        let mut processes: Vec<&str> = loaded.iter().map(|c| c.process.as_str()).collect();
        processes.sort_unstable();
        processes.dedup();
        CellsRecord {
            count: loaded.len(),
            processes: processes.len(),
            cell_seconds: loaded.iter().map(|c| c.wall_seconds).sum(),
            missing: Vec::new(),
        }
    }
}

/// `host:pid`, with `slurm:JOB_ARRAY` where Slurm runs the process.
pub fn process_name() -> String {
    let mut name = format!("{}:{}", crate::lock::host_name(), std::process::id());
    if let Ok(job) = std::env::var("SLURM_JOB_ID") {
        name.push_str(&format!(" slurm:{job}"));
        if let Ok(task) = std::env::var("SLURM_ARRAY_TASK_ID") {
            name.push_str(&format!("[{task}]"));
        }
    }
    name
}

/// Sorts cells by seed (stably) and checks their labels: unique, and safe as a file name.
pub fn order<S>(mut cells: Vec<Cell<S>>) -> Result<Vec<Cell<S>>> {
    cells.sort_by_key(|c| c.seed);
    let mut seen = std::collections::HashSet::new();
    for c in &cells {
        let safe = !c.label.is_empty()
            && c.label.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
            && !c.label.starts_with('.');
        if !safe {
            return Err(LabError::Run(format!("cell label `{}` is not a safe file name", c.label)));
        }
        if !seen.insert(c.label.clone()) {
            return Err(LabError::Run(format!("two cells are labelled `{}`", c.label)));
        }
    }
    Ok(cells)
}

/// The cells as `saturn cells` lists them.
pub fn infos<S>(cells: &[Cell<S>]) -> Vec<CellInfo> {
    cells
        .iter()
        .enumerate()
        .map(|(index, c)| CellInfo {
            index,
            label: c.label.clone(),
            seed: c.seed,
            minutes: c.minutes,
        })
        .collect()
}

fn cell_file(root: &RunDir, label: &str) -> PathBuf {
    root.file(CELLS_DIR).join(label).join(CELL_FILE)
}

/// The finished cell's record, if its file exists; another config's record is an error.
fn load<T: DeserializeOwned>(
    root: &RunDir,
    label: &str,
    config: &str,
) -> Result<Option<CellRecord<T>>> {
    let path = cell_file(root, label);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let record: CellRecord<T> = ron::from_str(&text)
        .map_err(|e| LabError::Run(format!("{}: not a cell record: {e}", path.display())))?;
    if record.label != label {
        return Err(LabError::Run(format!(
            "{}: holds cell `{}`, not `{label}`",
            path.display(),
            record.label
        )));
    }
    if record.config != config {
        return Err(LabError::Run(format!(
            "{}: computed with another config; remove the cell's directory or run with the config it was made with",
            path.display()
        )));
    }
    Ok(Some(record))
}

fn save<T: Serialize>(root: &RunDir, record: &CellRecord<T>) -> Result<()> {
    let path = cell_file(root, &record.label);
    let text = ron::ser::to_string_pretty(record, ron::ser::PrettyConfig::default())
        .map_err(|e| LabError::Run(format!("{}: {e}", path.display())))?;
    Ok(saturn_tensor::io::write_atomically(&path, text.as_bytes())?)
}

/// A cell record's text without its provenance (wall time, process): what two computations of
/// the same cell must agree on, bit for bit.
pub fn without_provenance(record: &str) -> String {
    record
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("wall_seconds:") && !l.starts_with("process:")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every finished cell of the run directory `run_dir` (`OUT/NAME`): (label, record without
/// provenance), sorted by label.
pub fn finished_records(run_dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    let root = run_dir.join(CELLS_DIR);
    let mut records = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(io_err(&root))?.flatten() {
        let file = entry.path().join(CELL_FILE);
        if let Ok(text) = std::fs::read_to_string(&file) {
            records.push((
                entry.file_name().to_string_lossy().into_owned(),
                without_provenance(&text),
            ));
        }
    }
    records.sort();
    Ok(records)
}

impl ExperimentCtx {
    /// Runs `cells` as the run's [`CellMode`] says, computing a cell with `work(cell, dir)`
    /// (`dir` is the cell's own directory, `cells/LABEL/`, for checkpoints and metrics), and
    /// returns every cell with its output, ordered by seed. `config` is what the cells depend
    /// on: a cell file made under another one is refused.
    ///
    /// An experiment calls this once, after reading its config and data and before computing
    /// anything else: in `--cell` and plan modes the run ends here with [`LabError::Stop`].
    pub fn cells<S, T, F>(
        &self,
        config: &impl Serialize,
        cells: Vec<Cell<S>>,
        mut work: F,
    ) -> Result<Vec<(Cell<S>, T)>>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&Cell<S>, &RunDir) -> Result<T>,
    {
        let config = serde_json::to_string(config)
            .map_err(|e| LabError::Run(format!("config of the cells: {e}")))?;
        let cells = order(cells)?;
        let compute = |cell: &Cell<S>, work: &mut F| -> Result<()> {
            let started = Instant::now();
            let dir = self.dir.sub(CELLS_DIR)?.sub(&cell.label)?;
            // one writer per cell: a second process on it refuses
            let _lock = Lock::acquire(&dir.file("lock"), self.cell_state.break_lock)?;
            if self.resume
                && let Some(_) = load::<T>(&self.dir, &cell.label, &config)?
            {
                return Ok(()); // finished by another process while this one waited
            }
            let output = work(cell, &dir)?;
            save(
                &self.dir,
                &CellRecord {
                    label: cell.label.clone(),
                    seed: cell.seed,
                    config: config.clone(),
                    wall_seconds: started.elapsed().as_secs_f64(),
                    process: process_name(),
                    preset: Some(self.preset),
                    output,
                },
            )
        };
        let restored = match self.cell_state.mode {
            CellMode::Plan => Vec::new(),
            _ => self.restore_from_store(&cells, &config)?,
        };
        // a cell restored from the store is finished, with or without --resume
        let reuse = |label: &str| self.resume || restored.iter().any(|r| r == label);
        match self.cell_state.mode {
            CellMode::Plan => Err(LabError::Stop(Stop::Planned(infos(&cells)))),
            CellMode::Only(index) => {
                let cell = cells.get(index).ok_or_else(|| {
                    LabError::Config(format!(
                        "cell {index} does not exist: this run has {} cells (0–{})",
                        cells.len(),
                        cells.len().saturating_sub(1)
                    ))
                })?;
                let already =
                    reuse(&cell.label) && load::<T>(&self.dir, &cell.label, &config)?.is_some();
                if !already {
                    compute(cell, &mut work)?;
                }
                Err(LabError::Stop(Stop::CellFinished { label: cell.label.clone(), already }))
            }
            CellMode::Merge => {
                let mut found = Vec::with_capacity(cells.len());
                let mut missing = Vec::new();
                for cell in cells {
                    match load::<T>(&self.dir, &cell.label, &config)? {
                        Some(record) => found.push((cell, record)),
                        None => missing.push(cell.label),
                    }
                }
                if !missing.is_empty() {
                    return Err(LabError::MissingCells(missing));
                }
                Ok(found.into_iter().map(|(cell, record)| (cell, self.keep(record))).collect())
            }
            CellMode::All => {
                let mut out = Vec::with_capacity(cells.len());
                for cell in cells {
                    let saved = if reuse(&cell.label) {
                        load::<T>(&self.dir, &cell.label, &config)?
                    } else {
                        None
                    };
                    if saved.is_none() {
                        compute(&cell, &mut work)?;
                    }
                    let record = load::<T>(&self.dir, &cell.label, &config)?.ok_or_else(|| {
                        LabError::Run(format!("cell `{}`: its record vanished", cell.label))
                    })?;
                    out.push((cell, self.keep(record)));
                }
                Ok(out)
            }
        }
    }

    /// Copies into the run directory every cell the store holds under this config (see
    /// [`crate::cell_store`]); returns their labels. A stored record of another config is left
    /// unused, with a note on stderr.
    fn restore_from_store<S>(&self, cells: &[Cell<S>], config: &str) -> Result<Vec<String>> {
        let Some(store) = &self.cell_state.store else { return Ok(Vec::new()) };
        let mut restored = Vec::new();
        for cell in cells {
            match crate::cell_store::restore(store, &self.dir, &cell.label, config)? {
                Restored::Copied => restored.push(cell.label.clone()),
                Restored::OtherConfig(path) => eprintln!(
                    "saturn: the stored cell {} was computed under another config: recomputing it",
                    path.display()
                ),
                Restored::Nothing => {}
            }
        }
        Ok(restored)
    }

    fn keep<T>(&self, record: CellRecord<T>) -> T {
        self.cell_state.loaded.borrow_mut().push(CellProvenance {
            label: record.label,
            wall_seconds: record.wall_seconds,
            process: record.process,
        });
        record.output
    }

    /// Writes the experiment's `config.toml`, unless this run computes a single cell or only
    /// plans (those write nothing outside their cell).
    pub fn write_config(&self, config: &impl Serialize) -> Result<()> {
        if self.cell_state.mode.writes_results() {
            self.dir.write_toml("config.toml", config)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    fn ctx(root: &std::path::Path, mode: CellMode, resume: bool) -> ExperimentCtx {
        ExperimentCtx {
            preset: Preset::Quick,
            seeds: vec![0, 1],
            config_file: None,
            dir: RunDir::create(root, "toy").unwrap(),
            resume,
            cell_state: CellState::new(mode),
        }
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("saturn-cells-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Two schemes × two seeds, scheme outermost as an experiment might list them.
    fn toy() -> Vec<Cell<(&'static str, u64)>> {
        let mut cells = Vec::new();
        for scheme in ["post", "pre"] {
            for seed in [1, 0] {
                cells.push(Cell::new(seed, format!("{scheme}-seed{seed}"), (scheme, seed)));
            }
        }
        cells
    }

    fn value(spec: &(&str, u64)) -> f64 {
        if spec.0 == "post" { f64::NAN } else { 1.0 / (spec.1 as f64 + 3.0) }
    }

    #[test]
    fn cells_are_ordered_by_seed_and_labels_must_be_unique_file_names() {
        let labels: Vec<String> = order(toy()).unwrap().into_iter().map(|c| c.label).collect();
        assert_eq!(labels, ["post-seed0", "pre-seed0", "post-seed1", "pre-seed1"]);
        let twice = vec![Cell::new(0, "a", ()), Cell::new(1, "a", ())];
        assert!(order(twice).unwrap_err().to_string().contains("two cells"));
        assert!(order(vec![Cell::new(0, "../x", ())]).is_err());
    }

    #[test]
    fn cells_run_one_at_a_time_then_merge_to_what_one_process_computes() {
        let root = tmp("merge");
        // one process
        let whole = ctx(&root.join("one"), CellMode::All, false)
            .cells(&"cfg", toy(), |c, _| Ok(value(&c.spec)))
            .unwrap();
        // the plan, then each cell on its own, then the merge
        let cut = root.join("cut");
        let Err(LabError::Stop(Stop::Planned(plan))) =
            ctx(&cut, CellMode::Plan, false)
                .cells(&"cfg", toy(), |_, _| -> Result<f64> { panic!() })
        else {
            panic!("plan mode must stop with the plan")
        };
        assert_eq!(plan.len(), 4);
        let merge = |cut: &std::path::Path| {
            ctx(cut, CellMode::Merge, false)
                .cells(&"cfg", toy(), |_, _| -> Result<f64> { panic!("a merge computes nothing") })
        };
        for info in &plan[..3] {
            let r = ctx(&cut, CellMode::Only(info.index), false)
                .cells(&"cfg", toy(), |c, _| Ok(value(&c.spec)));
            assert!(matches!(r, Err(LabError::Stop(Stop::CellFinished { .. }))));
        }
        match merge(&cut) {
            Err(LabError::MissingCells(m)) => assert_eq!(m, ["pre-seed1"]),
            other => panic!("a merge with a missing cell must name it, got {other:?}"),
        }
        let _ = ctx(&cut, CellMode::Only(3), false).cells(&"cfg", toy(), |c, _| Ok(value(&c.spec)));
        let merged = merge(&cut).unwrap();
        let bits = |v: &[(Cell<(&str, u64)>, f64)]| -> Vec<(String, u64)> {
            v.iter().map(|(c, x)| (c.label.clone(), x.to_bits())).collect()
        };
        assert_eq!(bits(&merged), bits(&whole));
        assert!(merged[0].1.is_nan(), "NaN survives the cell file");
        // another config's cells are refused
        let other = ctx(&cut, CellMode::Merge, false).cells(&"other", toy(), |_, _| Ok(0.0));
        assert!(other.unwrap_err().to_string().contains("another config"));
        // a cell index out of range is a config error
        let far = ctx(&cut, CellMode::Only(9), false).cells(&"cfg", toy(), |_, _| Ok(0.0));
        assert!(far.unwrap_err().to_string().contains("cell 9 does not exist"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_resumed_cell_is_not_computed_again() {
        let root = tmp("resume");
        let _ =
            ctx(&root, CellMode::Only(0), false).cells(&"cfg", toy(), |c, _| Ok(value(&c.spec)));
        let r = ctx(&root, CellMode::Only(0), true)
            .cells(&"cfg", toy(), |_, _| -> Result<f64> { panic!("finished already") });
        assert!(matches!(r, Err(LabError::Stop(Stop::CellFinished { already: true, .. }))));
        let mut computed = Vec::new();
        let all = ctx(&root, CellMode::All, true)
            .cells(&"cfg", toy(), |c, _| {
                computed.push(c.label.clone());
                Ok(value(&c.spec))
            })
            .unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(computed, ["pre-seed0", "post-seed1", "pre-seed1"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
