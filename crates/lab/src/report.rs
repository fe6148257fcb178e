//! `saturn report`: the committed record of every experiment, rendered into `docs/RESULTS.md`.
//!
//! The record is `docs/results/<experiment>.json` (one `summary.json` per experiment) plus its
//! figures in `docs/figures/<experiment>/`. `write_report` folds the runs found under the
//! results directory into that record and renders the whole record, so running one experiment
//! and reporting updates its section without losing the others (run directories are not
//! committed). Per experiment the record keeps the most thorough run: a full-preset run is
//! replaced only by a newer full-preset run, a quick one by anything newer.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::Preset;
use crate::error::{LabError, Result, io_err};
use crate::metadata::Metadata;
use crate::summary::Summary;

/// Reads every `*/summary.json` under `results`, sorted by experiment name.
pub fn gather(results: &Path) -> Result<Vec<(PathBuf, Summary)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(results).map_err(io_err(results))?;
    for entry in entries.flatten() {
        let path = entry.path().join("summary.json");
        if path.exists() {
            out.push((entry.path(), read_summary(&path)?));
        }
    }
    out.sort_by(|a, b| a.1.experiment.cmp(&b.1.experiment));
    Ok(out)
}

fn read_summary(path: &Path) -> Result<Summary> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| LabError::Run(format!("{}: {e}", path.display())))
}

/// Reads the committed record, `docs/results/*.json`, sorted by experiment name (an absent
/// directory is an empty record).
pub fn recorded(docs: &Path) -> Result<Vec<Summary>> {
    let dir = docs.join("results");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "json") {
            out.push(read_summary(&path)?);
        }
    }
    out.sort_by(|a, b| a.experiment.cmp(&b.experiment));
    Ok(out)
}

/// Whether `new` should replace `old` in the record: a full-preset run is replaced only by a
/// newer full-preset run; a quick one by any newer run (or by a full one).
pub fn supersedes(new: &Summary, old: &Summary) -> bool {
    let rank = |s: &Summary| match s.preset {
        Preset::Quick => 0,
        Preset::Full => 1,
    };
    (rank(new), new.metadata.started_unix) >= (rank(old), old.metadata.started_unix)
}

/// The table at the top of the report: one row per experiment with its preset, seeds, the
/// number of claims holding, and the ids of those that do not.
fn overview(record: &[Summary]) -> String {
    let mut md = String::from(
        "| experiment | preset | seeds | claims holding | not holding |\n|---|---|---|---|---|\n",
    );
    let (mut held_all, mut total) = (0, 0);
    for s in record {
        let held = s.claims.iter().filter(|c| c.holds).count();
        let failing: Vec<String> =
            s.claims.iter().filter(|c| !c.holds).map(|c| format!("`{}`", c.id)).collect();
        held_all += held;
        total += s.claims.len();
        let _ = writeln!(
            md,
            "| [{e}](#{e}) | {} | {} | {held} of {} | {} |",
            s.preset.name(),
            s.seeds.len(),
            s.claims.len(),
            failing.join(", "),
            e = s.experiment,
        );
    }
    let _ = writeln!(md, "\nIn all: {held_all} of {total} claims hold.\n");
    md
}

/// Makes `summary` (from the run directory `run_dir`) the record of its experiment:
/// `docs/results/<experiment>.json`, and its figures (PNG and SVG) in
/// `docs/figures/<experiment>/`, replacing the previous run's.
fn record_run(run_dir: &Path, summary: &Summary, docs: &Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(summary)
        .map_err(|e| LabError::Run(format!("{}: {e}", summary.experiment)))?;
    let path = docs.join("results").join(format!("{}.json", summary.experiment));
    saturn_tensor::io::write_atomically(&path, &json)?;
    let figures = docs.join("figures").join(&summary.experiment);
    if figures.exists() {
        std::fs::remove_dir_all(&figures).map_err(io_err(&figures))?;
    }
    std::fs::create_dir_all(&figures).map_err(io_err(&figures))?;
    for fig in files_with(run_dir, &["png", "svg"])? {
        let name = fig.file_name().unwrap_or_default();
        std::fs::copy(&fig, figures.join(name)).map_err(io_err(&fig))?;
    }
    Ok(())
}

/// The files directly in `dir` with one of the `extensions`, sorted (none if `dir` is absent).
fn files_with(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|x| x.to_str()).is_some_and(|x| extensions.contains(&x)))
        .collect();
    files.sort();
    Ok(files)
}

/// Folds the runs under `results` (if it exists) into the record in `docs` (see the module
/// docs for which run is kept) and writes `docs/RESULTS.md` from the whole record. Returns the
/// number of experiments in the report.
pub fn write_report(results: &Path, docs: &Path) -> Result<usize> {
    let mut record = recorded(docs)?;
    let runs = if results.exists() { gather(results)? } else { Vec::new() };
    for (dir, run) in runs {
        let position = record.iter().position(|s| s.experiment == run.experiment);
        if position.is_some_and(|i| !supersedes(&run, &record[i])) {
            continue;
        }
        record_run(&dir, &run, docs)?;
        match position {
            Some(i) => record[i] = run,
            None => record.push(run),
        }
    }
    record.sort_by(|a, b| a.experiment.cmp(&b.experiment));

    let mut md = String::from(
        "# Results\n\nGenerated by `cargo xtask report` from the record in `docs/results/` \
         (one summary per experiment; a run is folded in when it is at least as thorough as the \
         recorded one and newer). Every number is computed by the run; `holds` is computed from \
         `measured` by the experiment's code.\n\n",
    );
    md.push_str(&overview(&record));
    for s in &record {
        let held = s.claims.iter().filter(|c| c.holds).count();
        let _ = writeln!(md, "## {}\n", s.experiment);
        let _ = writeln!(
            md,
            "Preset `{}`, seeds {:?}, {:.0} s{}, commit `{}`, {} ({} thread(s)). Claims holding: {held} of {}.\n",
            s.preset.name(),
            s.seeds,
            s.wall_seconds,
            if s.resumed { " in the last, resumed process" } else { "" },
            s.metadata.git_commit,
            gemm_label(&s.metadata),
            s.metadata.threads,
            s.claims.len()
        );
        md.push_str("| claim | source | expected | measured | holds |\n|---|---|---|---|---|\n");
        for c in &s.claims {
            let measured =
                serde_json::to_string(&c.measured).unwrap_or_default().replace('|', "\\|");
            let _ = writeln!(
                md,
                "| {} | {} | {} | `{}` | {} |",
                c.statement,
                c.source,
                c.expected,
                measured,
                if c.holds { "yes" } else { "**no**" }
            );
        }
        md.push('\n');
        for fig in files_with(&docs.join("figures").join(&s.experiment), &["png"])? {
            let name = fig.file_name().and_then(|n| n.to_str()).unwrap_or("figure");
            let _ = writeln!(md, "![{name}](figures/{}/{name})\n", s.experiment);
        }
    }
    saturn_tensor::io::write_atomically(&docs.join("RESULTS.md"), md.as_bytes())?;
    Ok(record.len())
}

/// The GEMM backend in a few words: "OpenBLAS <core>" or "MKL <version>".
fn gemm_label(m: &Metadata) -> String {
    const MKL: &str = "Math Kernel Library Version ";
    match m.blas.find(MKL) {
        Some(at) => {
            let version = m.blas[at + MKL.len()..].split(['-', ' ']).next().unwrap_or_default();
            format!("MKL {version}")
        }
        None if m.blas.is_empty() || m.blas.starts_with("OpenBLAS") => {
            format!("OpenBLAS {}", m.openblas_core)
        }
        None => m.blas.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(preset: Preset, started_unix: u64) -> Summary {
        Summary {
            experiment: "e".into(),
            preset,
            seeds: vec![0],
            wall_seconds: 1.0,
            resumed: false,
            claims: Vec::new(),
            metadata: Metadata {
                git_commit: "abc".into(),
                openblas_core: "core".into(),
                openblas_config: "config".into(),
                blas: "OpenBLAS".into(),
                threads: 1,
                saturn_version: "0".into(),
                started_unix,
            },
        }
    }

    #[test]
    fn the_header_names_the_gemm_backend() {
        let mut m = summary(Preset::Quick, 0).metadata;
        m.blas = "Intel(R) oneAPI Math Kernel Library Version 2026.2-Product Build 20260915".into();
        assert_eq!(gemm_label(&m), "MKL 2026.2");
        m.blas = "OpenBLAS (core, config)".into();
        assert_eq!(gemm_label(&m), "OpenBLAS core");
        m.blas = String::new(); // records made before the field was kept
        assert_eq!(gemm_label(&m), "OpenBLAS core");
    }

    #[test]
    fn a_full_record_is_kept_against_quick_runs_and_replaced_by_a_newer_full_one() {
        let full = summary(Preset::Full, 100);
        assert!(!supersedes(&summary(Preset::Quick, 200), &full));
        assert!(supersedes(&summary(Preset::Full, 200), &full));
        assert!(!supersedes(&summary(Preset::Full, 50), &full));
    }

    #[test]
    fn a_quick_record_is_replaced_by_any_newer_run() {
        let quick = summary(Preset::Quick, 100);
        assert!(supersedes(&summary(Preset::Quick, 200), &quick));
        assert!(supersedes(&summary(Preset::Full, 50), &quick));
        assert!(!supersedes(&summary(Preset::Quick, 50), &quick));
    }
}
