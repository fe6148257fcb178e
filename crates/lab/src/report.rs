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

use crate::claim::{Claim, Origin, Verdict, short};
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

/// The table at the top of the report: one row per experiment with its preset, seeds, and the
/// number of claims that hold, fail and are inconclusive (legacy records: holding or not).
fn overview(record: &[Summary]) -> String {
    let mut md = String::from(
        "| experiment | preset | seeds | holds | fails | inconclusive | not holding |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let (mut all_holds, mut all_fails, mut all_open, mut total) = (0, 0, 0, 0);
    for s in record {
        let (holds, fails, open) = s.counts();
        let others: Vec<String> = s
            .claims
            .iter()
            .filter(|c| c.outcome() != Verdict::Holds)
            .map(|c| format!("`{}` ({})", c.id, c.outcome().name()))
            .collect();
        (all_holds, all_fails, all_open, total) =
            (all_holds + holds, all_fails + fails, all_open + open, total + s.claims.len());
        let _ = writeln!(
            md,
            "| [{e}](#{e}) | {} | {} | {holds} | {fails} | {open} | {} |",
            preset_label(s),
            seeds_label(s),
            others.join(", "),
            e = s.experiment,
        );
    }
    let _ = writeln!(
        md,
        "\nIn all: {total} claims; {all_holds} hold, {all_fails} fail, {all_open} are \
         inconclusive.\n"
    );
    md
}

/// "full", "full, partial", or "quick, legacy" for records made before verdicts.
fn preset_label(s: &Summary) -> String {
    let mut label = s.preset.name().to_string();
    if s.partial {
        label.push_str(", **partial**");
    }
    if s.schema < crate::summary::SCHEMA {
        label.push_str(", legacy");
    }
    label
}

/// "3", or "2 of 5" when the run has fewer seeds than its preset asks for.
fn seeds_label(s: &Summary) -> String {
    if s.has_preset_seeds() {
        s.seeds.len().to_string()
    } else {
        format!("{} of {}", s.seeds.len(), s.preset_seeds)
    }
}

/// The evidence of a claim in one table cell: the statistic, the mean with its interval (or
/// the single value), the rule, and the per-seed values.
fn evidence_cell(c: &Claim) -> String {
    let Some(e) = &c.evidence else { return "legacy: no per-seed evidence".into() };
    let values: Vec<String> = e.values.iter().map(|&v| short(v)).collect();
    let centre = match &e.interval {
        Some(i) => format!(
            "mean {} [{}, {}] ({:.0} % t, n = {})",
            short(i.estimate),
            short(i.low),
            short(i.high),
            i.level * 100.0,
            i.n
        ),
        None if e.values.len() == 1 => format!("{} (one seed, no interval)", values[0]),
        None => "no interval (an undefined value)".into(),
    };
    format!("{}: {centre}; rule {}; per seed {}", e.statistic, e.rule.describe(), values.join(", "))
}

fn gates_cell(c: &Claim) -> String {
    if c.gates.is_empty() {
        return "—".into();
    }
    c.gates
        .iter()
        .map(|g| format!("{} {}", if g.met { "met:" } else { "**not met**:" }, g.what))
        .collect::<Vec<_>>()
        .join("; ")
}

fn threshold_cell(c: &Claim) -> String {
    match &c.threshold {
        Some(t) => {
            let origin = match t.origin {
                Origin::Source => "source",
                Origin::Ours => "ours",
                Origin::AsBefore => "as before",
            };
            format!("{origin}: {}", t.note)
        }
        None => "legacy".into(),
    }
}

fn verdict_cell(c: &Claim) -> String {
    match c.verdict {
        Some(Verdict::Holds) => "holds".into(),
        Some(Verdict::Fails) => "**fails**".into(),
        Some(Verdict::Inconclusive) => "*inconclusive*".into(),
        None if c.holds => "holds (legacy)".into(),
        None => "**fails** (legacy)".into(),
    }
}

/// At most 400 characters of a claim's measured values; the rest is in the record.
fn abridged(json: &str) -> String {
    const MAX: usize = 400;
    match json.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… (the rest in the record's JSON)", &json[..at]),
        None => json.to_string(),
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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

/// For a partial run, the table of the cells it still lacks and the command that runs them.
fn missing_cells(s: &Summary) -> String {
    let Some(missing) = s.cells.as_ref().map(|c| &c.missing).filter(|m| !m.is_empty()) else {
        return String::new();
    };
    let mut md = format!(
        "**Partial:** {} cell(s) are still missing. `cargo xtask sweep {} --full --out runs \
         --emit parallel` lists the commands; the finished cells are kept in \
         `docs/results/cells/{}/` and are not recomputed ([SWEEPS.md](SWEEPS.md#across-sessions-and-machines-the-cell-store)).\n\n\
         | missing cell |\n|---|\n",
        missing.len(),
        s.experiment,
        s.experiment
    );
    for label in missing {
        let _ = writeln!(md, "| `{label}` |");
    }
    md.push('\n');
    md
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
/// docs for which run is kept) and writes `docs/RESULTS.md` from the whole record. A `--full`
/// run with fewer seeds than its preset asks for is refused, unless `allow_partial`, when it is
/// folded in marked partial. Returns the number of experiments in the report.
pub fn write_report(results: &Path, docs: &Path, allow_partial: bool) -> Result<usize> {
    let mut record = recorded(docs)?;
    let runs = if results.exists() { gather(results)? } else { Vec::new() };
    for (dir, mut run) in runs {
        if run.preset == Preset::Full && !run.has_preset_seeds() {
            if !allow_partial {
                return Err(LabError::Run(format!(
                    "{}: a --full run with {} of the {} seeds its preset asks for ({:?}); run the \
                     missing seeds, or report with --allow-partial to record it as partial",
                    dir.display(),
                    run.seeds.len(),
                    run.preset_seeds,
                    run.seeds
                )));
            }
            run.partial = true;
        }
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
         recorded one and newer). Every number is computed by the run, and every verdict from \
         the numbers by `saturn_lab::claim`: a claim **holds** when the 95 % Student t interval \
         of its per-seed values lies wholly on the claimed side of its threshold, **fails** when \
         it lies wholly on the other side, and is *inconclusive* when it straddles the threshold, \
         when a value is undefined, or when a gate (the precondition that makes the value \
         meaningful, e.g. that the model learned) is not met. With one seed the point value \
         decides, and the table says so. Each threshold's origin is given: read off the source, \
         ours (with the reason), or kept as before (not yet derived from the source). \
         Records marked *legacy* predate per-seed verdicts (holding or not, no interval).\n\n",
    );
    md.push_str(&overview(&record));
    for s in &record {
        let (holds, fails, open) = s.counts();
        let _ = writeln!(md, "## {}\n", s.experiment);
        let _ = writeln!(
            md,
            "Preset `{}`, seeds {:?}{}, {:.0} s{}{}, commit `{}`, {} ({} thread(s)). \
             {holds} hold, {fails} fail, {open} inconclusive.\n",
            preset_label(s),
            s.seeds,
            if s.has_preset_seeds() {
                String::new()
            } else {
                format!(" (the preset asks for {})", s.preset_seeds)
            },
            s.wall_seconds,
            if s.resumed { " in the last, resumed process" } else { "" },
            match &s.cells {
                Some(c) if c.processes > 1 => format!(
                    " to merge {} cells computed by {} processes in {:.0} core-s",
                    c.count, c.processes, c.cell_seconds
                ),
                _ => String::new(),
            },
            s.metadata.git_commit,
            gemm_label(&s.metadata),
            s.metadata.threads,
        );
        md.push_str(&missing_cells(s));
        md.push_str(
            "| claim | source | threshold | expected | evidence | gates | verdict | measured |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for c in &s.claims {
            let measured = abridged(&serde_json::to_string(&c.measured).unwrap_or_default());
            let verdict = if c.reason.is_empty() {
                verdict_cell(c)
            } else {
                format!("{} — {}", verdict_cell(c), c.reason)
            };
            let _ = writeln!(
                md,
                "| {} (`{}`) | {} | {} | {} | {} | {} | {} | `{}` |",
                cell(&c.statement),
                c.id,
                cell(&c.source),
                cell(&threshold_cell(c)),
                cell(&c.expected),
                cell(&evidence_cell(c)),
                cell(&gates_cell(c)),
                cell(&verdict),
                cell(&measured),
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
            schema: crate::summary::SCHEMA,
            experiment: "e".into(),
            preset,
            seeds: vec![0],
            preset_seeds: 1,
            partial: false,
            wall_seconds: 1.0,
            resumed: false,
            claims: Vec::new(),
            metadata: Metadata {
                git_commit: "abc".into(),
                openblas_core: "core".into(),
                openblas_config: "config".into(),
                blas: "OpenBLAS".into(),
                threads: 1,
                openblas_worker_spin: Some(4),
                saturn_version: "0".into(),
                started_unix,
            },
            cells: None,
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

    /// A run directory `dir/<name>` holding `summary`'s summary.json.
    fn write_run(results: &Path, s: &Summary) {
        let dir = results.join(&s.experiment);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), serde_json::to_vec(s).unwrap()).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("saturn-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn with_claims(mut s: Summary) -> Summary {
        use crate::claim::{Evidence, Rule, Threshold};
        let claim = |id: &str, values: Vec<f64>| {
            Claim::builder(id)
                .statement("a statement")
                .source("a source")
                .expected("mean > 1")
                .threshold(Threshold::ours("a test"))
                .evidence(Evidence::new("v", &[0, 1, 2], values, Rule::Above(1.0)))
                .build()
        };
        s.claims = vec![
            claim("up", vec![2.0, 2.1, 1.9]),
            claim("down", vec![0.1, 0.2, 0.15]),
            claim("tie", vec![0.5, 1.5, 1.0]),
        ];
        s
    }

    #[test]
    fn a_full_run_short_of_its_seeds_is_refused_unless_partial_is_allowed() {
        let root = tmp("partial");
        let (results, docs) = (root.join("runs"), root.join("docs"));
        let mut run = with_claims(summary(Preset::Full, 100));
        run.preset_seeds = 5;
        run.seeds = vec![0, 1, 2];
        run.cells = Some(crate::cells::CellsRecord {
            missing: vec!["post-seed3".into(), "pre-seed4".into()],
            ..Default::default()
        });
        write_run(&results, &run);
        let err = write_report(&results, &docs, false).unwrap_err().to_string();
        assert!(err.contains("3 of the 5 seeds") && err.contains("--allow-partial"), "{err}");
        assert!(!docs.join("RESULTS.md").exists(), "nothing is written when a run is refused");
        assert_eq!(write_report(&results, &docs, true).unwrap(), 1);
        let md = std::fs::read_to_string(docs.join("RESULTS.md")).unwrap();
        assert!(md.contains("**partial**") && md.contains("3 of 5"), "{md}");
        assert!(
            md.contains("2 cell(s) are still missing") && md.contains("| `pre-seed4` |"),
            "{md}"
        );
        assert!(recorded(&docs).unwrap()[0].partial);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_report_counts_each_verdict_and_marks_legacy_records() {
        let root = tmp("counts");
        let (results, docs) = (root.join("runs"), root.join("docs"));
        write_run(&results, &with_claims(summary(Preset::Quick, 100)));
        let mut legacy = summary(Preset::Full, 50);
        legacy.experiment = "old".into();
        legacy.schema = 1;
        legacy.preset_seeds = 0;
        legacy.claims = vec![Claim {
            verdict: None,
            evidence: None,
            threshold: None,
            reason: String::new(),
            ..with_claims(summary(Preset::Full, 50)).claims[0].clone()
        }];
        write_run(&results, &legacy);
        write_report(&results, &docs, false).unwrap();
        let md = std::fs::read_to_string(docs.join("RESULTS.md")).unwrap();
        assert!(md.contains("| [e](#e) | quick | 1 | 1 | 1 | 1 |"), "{md}");
        assert!(md.contains("full, legacy"), "{md}");
        assert!(md.contains("4 claims; 2 hold, 1 fail, 1 are inconclusive"), "{md}");
        assert!(md.contains("*inconclusive*") && md.contains("holds (legacy)"), "{md}");
        assert!(md.contains("mean 2 [") && md.contains("95 % t, n = 3"), "{md}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
