//! Cells merge to what one process computes: for every experiment, at a tiny config
//! (`tests/tiny/NAME.toml`, laid over the quick preset), running each cell on its own
//! (`--cell I`) and then `--merge-only` gives the same claims, measured values, evidence and
//! cell outputs, bit for bit, as one plain run — and a merge with a cell missing refuses,
//! naming it, unless partial merges are allowed.
//!
//! `SATURN_CELLS_ONLY=a,b` restricts the test to those experiments.

use std::path::{Path, PathBuf};

use saturn_lab::cells::{CELLS_DIR, finished_records};
use saturn_lab::config::Preset;
use saturn_lab::experiments::{EXPERIMENTS, Experiment};
use saturn_lab::summary::Summary;
use saturn_lab::{LabError, RunOptions, plan_cells, run_cell, run_experiment};

fn tiny_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tiny").join(format!("{name}.toml"))
}

fn options(exp: &Experiment, out: &Path) -> RunOptions {
    RunOptions {
        config_file: Some(tiny_config(exp.name)),
        ..RunOptions::new(Preset::Quick, vec![0, 1], out.to_path_buf())
    }
}

/// The claims as JSON, and every cell's record without its wall time and process.
fn fingerprint(s: &Summary, run_dir: &Path) -> (serde_json::Value, Vec<(String, String)>) {
    (serde_json::to_value(&s.claims).unwrap(), finished_records(run_dir).unwrap())
}

fn check(exp: &Experiment) {
    let root = std::env::temp_dir().join(format!(
        "saturn-cells-merge-{}-{}",
        std::process::id(),
        exp.name
    ));
    let _ = std::fs::remove_dir_all(&root);
    assert!(tiny_config(exp.name).is_file(), "{}: no tests/tiny/{}.toml", exp.name, exp.name);
    let whole = options(exp, &root.join("one"));
    let one = run_experiment(exp, &whole).unwrap_or_else(|e| panic!("{}: {e}", exp.name));

    let split = options(exp, &root.join("cells"));
    let plan = plan_cells(exp, &split).unwrap();
    assert!(!plan.is_empty(), "{}: no cells", exp.name);
    let seeds: Vec<u64> = plan.iter().map(|c| c.seed).collect();
    assert!(seeds.windows(2).all(|w| w[0] <= w[1]), "{}: cells not ordered by seed", exp.name);
    for cell in &plan[..plan.len() - 1] {
        let (label, already) = run_cell(exp, &split, cell.index).unwrap();
        assert_eq!((label.as_str(), already), (cell.label.as_str(), false));
    }
    // nothing but cells is written by a cell run
    let names: Vec<String> = std::fs::read_dir(root.join("cells").join(exp.name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [CELLS_DIR], "{}: a cell run wrote {names:?}", exp.name);

    let merge = RunOptions { merge_only: true, ..split.clone() };
    let last = plan.last().unwrap();
    match run_experiment(exp, &merge) {
        Err(LabError::MissingCells(m)) => {
            assert_eq!(m, std::slice::from_ref(&last.label), "{}", exp.name)
        }
        other => panic!(
            "{}: a merge with a cell missing must refuse, got {:?}",
            exp.name,
            other.map(|s| s.claims.len())
        ),
    }
    if plan.iter().any(|c| c.seed == 0) && last.seed == 1 {
        let partial =
            run_experiment(exp, &RunOptions { allow_partial: true, ..merge.clone() }).unwrap();
        assert!(
            partial.partial && partial.seeds == [0],
            "{}: partial merge keeps seed 0 only",
            exp.name
        );
        assert_eq!(partial.cells.as_ref().unwrap().missing, std::slice::from_ref(&last.label));
    }
    run_cell(exp, &split, last.index).unwrap();
    let merged = run_experiment(exp, &merge).unwrap_or_else(|e| panic!("{}: merge: {e}", exp.name));
    assert_eq!(merged.seeds, one.seeds);
    assert_eq!(merged.cells.as_ref().unwrap().count, plan.len());
    let a = fingerprint(&one, &root.join("one").join(exp.name));
    let b = fingerprint(&merged, &root.join("cells").join(exp.name));
    assert_eq!(a.1, b.1, "{}: cell outputs differ", exp.name);
    assert_eq!(a.0, b.0, "{}: claims differ between one process and merged cells", exp.name);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn every_experiments_cells_merge_to_the_single_process_run() {
    let only: Option<Vec<String>> =
        std::env::var("SATURN_CELLS_ONLY").ok().map(|s| s.split(',').map(str::to_string).collect());
    for exp in EXPERIMENTS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == exp.name)) {
            continue;
        }
        let started = std::time::Instant::now();
        check(exp);
        eprintln!(
            "{}: cells merge bit for bit ({:.1} s)",
            exp.name,
            started.elapsed().as_secs_f64()
        );
    }
}

/// A sweep spans machines and sessions: the full-preset cells one run finished, stored as
/// `saturn report` stores them, finish a run in another directory, which computes only the
/// cell still missing and merges to what one process computes; a stored cell of another
/// config is not used.
#[test]
fn stored_cells_finish_a_run_elsewhere_under_the_same_config_only() {
    let exp = saturn_lab::experiments::find("homogeneity").unwrap();
    let root = std::env::temp_dir().join(format!("saturn-cell-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let full = |dir: &str| RunOptions { preset: Preset::Full, ..options(exp, &root.join(dir)) };
    let first = full("first");
    let plan = plan_cells(exp, &first).unwrap();
    let last = plan.last().unwrap();
    for cell in &plan[..plan.len() - 1] {
        run_cell(exp, &first, cell.index).unwrap();
    }
    let store = root.join("store");
    let stored = saturn_lab::cell_store::record(&root.join("first"), &store).unwrap();
    assert_eq!(stored.len(), plan.len() - 1, "{stored:?}");

    let second = RunOptions { cell_store: Some(store.clone()), ..full("second") };
    assert_eq!(run_cell(exp, &second, 0).unwrap(), (plan[0].label.clone(), true));
    assert_eq!(run_cell(exp, &second, last.index).unwrap(), (last.label.clone(), false));
    let merged = run_experiment(exp, &RunOptions { merge_only: true, ..second.clone() }).unwrap();
    let one = run_experiment(exp, &full("one")).unwrap();
    assert_eq!(
        fingerprint(&one, &root.join("one").join(exp.name)),
        fingerprint(&merged, &root.join("second").join(exp.name)),
        "stored cells merge to the single-process run"
    );

    let other_config = root.join("other.toml");
    let tiny = std::fs::read_to_string(tiny_config(exp.name)).unwrap();
    std::fs::write(&other_config, format!("{tiny}\nsentences = 3\n")).unwrap();
    let third = RunOptions { config_file: Some(other_config), ..second.clone() };
    let third = RunOptions { out: root.join("third"), ..third };
    assert!(!run_cell(exp, &third, 0).unwrap().1, "another config's cell was used");
    let _ = std::fs::remove_dir_all(&root);
}
