//! The cell store: finished `--full` cells kept beside the record, so that a sweep longer than
//! one session (or one machine's allocation) is finished by several.
//!
//! A run directory does not outlive the machine it ran on, but a cell's output is small (its
//! `cell.ron`: the measured numbers, not the checkpoints). `saturn report` copies every finished
//! cell of a full-preset run under `runs/` into the store, `docs/results/cells/NAME/LABEL.ron`,
//! where it is committed with the record. A later run given the store (`--cell-store DIR`;
//! `cargo xtask sweep` and `cargo xtask experiment` pass `docs/results/cells`) copies a recorded
//! cell into its run directory before computing it — **only when the record was computed under
//! the same config** as the run's cell (the config is part of every cell file), so a protocol
//! change makes the old records unused, never mixed in. The cell then counts as finished: its
//! provenance (process, wall time) is the one that computed it.
//!
//! Quick-preset cells are never stored: they take minutes to recompute.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cells::{CELL_FILE, CELLS_DIR};
use crate::config::Preset;
use crate::error::{LabError, Result, io_err};
use crate::run_dir::RunDir;

/// The store's place under the docs directory: `docs/results/cells`.
pub fn default_store(docs: &Path) -> PathBuf {
    docs.join("results").join(CELLS_DIR)
}

/// The part of a cell file the store needs to decide: what it is and what config made it.
#[derive(Deserialize)]
struct Head {
    label: String,
    config: String,
    /// Absent in cell files written before the field existed (those are stored: only a
    /// known quick cell is left out).
    #[serde(default)]
    preset: Option<Preset>,
}

fn head(path: &Path, text: &str) -> Result<Head> {
    ron::from_str(text)
        .map_err(|e| LabError::Run(format!("{}: not a cell record: {e}", path.display())))
}

/// Copies every finished cell of every experiment's run directory under `results`
/// (`results/NAME/cells/LABEL/cell.ron`) that was not computed at the quick preset into
/// `store/NAME/LABEL.ron`, replacing an older record of the same label. Returns the
/// `NAME/LABEL` of each cell newly stored or changed, sorted.
pub fn record(results: &Path, store: &Path) -> Result<Vec<String>> {
    let mut stored = Vec::new();
    if !results.is_dir() {
        return Ok(stored);
    }
    for experiment in sorted_dirs(results)? {
        let cells = experiment.join(CELLS_DIR);
        if !cells.is_dir() {
            continue;
        }
        let name = file_name(&experiment);
        for cell in sorted_dirs(&cells)? {
            let file = cell.join(CELL_FILE);
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let h = head(&file, &text)?;
            if h.preset == Some(Preset::Quick) {
                continue;
            }
            let target = store.join(&name).join(format!("{}.ron", h.label));
            if std::fs::read_to_string(&target).is_ok_and(|old| old == text) {
                continue;
            }
            saturn_tensor::io::write_atomically(&target, text.as_bytes())?;
            stored.push(format!("{name}/{}", h.label));
        }
    }
    Ok(stored)
}

/// What [`restore`] did with one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The store has no record of the cell (or the run directory has its own file already).
    Nothing,
    /// The record was copied into the run directory.
    Copied,
    /// The store's record was made under another config; it is left unused.
    OtherConfig(PathBuf),
}

/// Copies `store/EXPERIMENT/LABEL.ron` into the run directory's `cells/LABEL/cell.ron` when the
/// run directory has no file for the cell and the record's config is `config`.
pub fn restore(store: &Path, run: &RunDir, label: &str, config: &str) -> Result<Restored> {
    let target = run.file(CELLS_DIR).join(label).join(CELL_FILE);
    if target.exists() {
        return Ok(Restored::Nothing);
    }
    let experiment = file_name(&run.path);
    let source = store.join(experiment).join(format!("{label}.ron"));
    let text = match std::fs::read_to_string(&source) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::Nothing),
        Err(e) => return Err(io_err(&source)(e)),
    };
    let h = head(&source, &text)?;
    if h.label != label {
        return Err(LabError::Run(format!(
            "{}: holds cell `{}`, not `{label}`",
            source.display(),
            h.label
        )));
    }
    if h.config != config {
        return Ok(Restored::OtherConfig(source));
    }
    saturn_tensor::io::write_atomically(&target, text.as_bytes())?;
    Ok(Restored::Copied)
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("saturn-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn cell_text(label: &str, config: &str, preset: Option<&str>) -> String {
        let preset = preset.map(|p| format!("preset: Some({p}),\n")).unwrap_or_default();
        format!(
            "(\n label: \"{label}\",\n seed: 0,\n config: \"{config}\",\n wall_seconds: 1.0,\n \
             process: \"h:1\",\n {preset} output: (x: 1.5),\n)"
        )
    }

    fn put(results: &Path, experiment: &str, text: &str, label: &str) {
        let dir = results.join(experiment).join(CELLS_DIR).join(label);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CELL_FILE), text).unwrap();
    }

    #[test]
    fn full_cells_are_stored_and_restored_only_under_their_config() {
        let root = tmp("roundtrip");
        let (results, store) = (root.join("runs"), root.join("store"));
        put(&results, "toy", &cell_text("a-seed0", "{k:1}", Some("full")), "a-seed0");
        put(&results, "toy", &cell_text("b-seed0", "{k:1}", None), "b-seed0");
        put(&results, "toy", &cell_text("q-seed0", "{k:1}", Some("quick")), "q-seed0");
        assert_eq!(record(&results, &store).unwrap(), ["toy/a-seed0", "toy/b-seed0"]);
        assert!(record(&results, &store).unwrap().is_empty(), "unchanged cells are not rewritten");

        let run = RunDir::create(&root.join("later"), "toy").unwrap();
        assert_eq!(restore(&store, &run, "a-seed0", "{k:1}").unwrap(), Restored::Copied);
        let copied = run.file(CELLS_DIR).join("a-seed0").join(CELL_FILE);
        assert_eq!(
            std::fs::read_to_string(copied).unwrap(),
            cell_text("a-seed0", "{k:1}", Some("full"))
        );
        assert_eq!(restore(&store, &run, "a-seed0", "{k:1}").unwrap(), Restored::Nothing);
        assert!(matches!(
            restore(&store, &run, "b-seed0", "{k:2}").unwrap(),
            Restored::OtherConfig(_)
        ));
        assert_eq!(restore(&store, &run, "q-seed0", "{k:1}").unwrap(), Restored::Nothing);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_damaged_record_is_a_clear_error() {
        let root = tmp("damaged");
        let store = root.join("store");
        std::fs::create_dir_all(store.join("toy")).unwrap();
        std::fs::write(store.join("toy").join("a.ron"), "(label: ").unwrap();
        let run = RunDir::create(&root.join("later"), "toy").unwrap();
        let err = restore(&store, &run, "a", "{}").unwrap_err().to_string();
        assert!(err.contains("not a cell record"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
