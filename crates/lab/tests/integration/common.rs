//! What the sabotage tests share: run an experiment on a tiny config laid over its quick preset,
//! once as it is and once sabotaged, and compare the verdicts of the claims the sabotage
//! targets. A sabotage test passes only when the sabotage moves each targeted claim into the
//! expected verdicts *and* the same tiny config without it does not — otherwise the claim could
//! not have failed, and the test would pass trivially.

#![allow(dead_code)] // not every helper is used by every sabotage module

use std::path::PathBuf;

use saturn_lab::claim::Verdict;
use saturn_lab::config::Preset;
use saturn_lab::experiments::find;
use saturn_lab::summary::Summary;
use saturn_lab::{RunOptions, run_experiment};

/// A fresh directory under the system's temp dir for this process and `name`.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("saturn-sabotage-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs experiment `name` at its quick preset with exactly `seeds` and `config` (TOML laid
/// over the preset) into a fresh directory labelled `label`.
pub fn run(name: &str, label: &str, seeds: &[u64], config: &str) -> Summary {
    let root = tmp(&format!("{name}-{label}"));
    let file = root.join("config.toml");
    std::fs::write(&file, config).unwrap();
    let opts = RunOptions {
        config_file: Some(file),
        ..RunOptions::new(Preset::Quick, seeds.to_vec(), root.join("runs"))
    };
    let summary = run_experiment(find(name).unwrap(), &opts)
        .unwrap_or_else(|e| panic!("{name} ({label}) failed to run: {e}"));
    let _ = std::fs::remove_dir_all(&root);
    summary
}

/// The verdict of claim `id` (panics, listing the ids, if there is none).
pub fn verdict(s: &Summary, id: &str) -> Verdict {
    let ids: Vec<&str> = s.claims.iter().map(|c| c.id.as_str()).collect();
    let c = s
        .claims
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{}: no claim {id} among {ids:?}", s.experiment));
    c.verdict.unwrap_or_else(|| panic!("{}: claim {id} has no verdict", s.experiment))
}

/// The reason of claim `id`.
pub fn reason(s: &Summary, id: &str) -> String {
    s.claims.iter().find(|c| c.id == id).map(|c| c.reason.clone()).unwrap_or_default()
}

/// Asserts that `sabotage` puts each claim of `ids` into `sabotaged_into`, while `clean` (the
/// same tiny config without the sabotage) puts none of them there. `what` names the sabotage
/// in the failure message.
pub fn assert_sabotage(
    what: &str,
    clean: &Summary,
    sabotaged: &Summary,
    ids: &[&str],
    sabotaged_into: &[Verdict],
) {
    for id in ids {
        let (c, s) = (verdict(clean, id), verdict(sabotaged, id));
        assert!(
            sabotaged_into.contains(&s),
            "{}: under the sabotage `{what}`, claim {id} came out {s:?} ({}), expected one of \
             {sabotaged_into:?}: the claim cannot be flipped",
            sabotaged.experiment,
            reason(sabotaged, id)
        );
        assert!(
            !sabotaged_into.contains(&c),
            "{}: without the sabotage `{what}`, claim {id} came out {c:?} ({}) as well: the \
             sabotage test is trivial",
            clean.experiment,
            reason(clean, id)
        );
    }
}

/// Every claim of `s` has the fields a reviewer needs: statement, source, expected, a
/// threshold origin, evidence and a verdict.
pub fn assert_complete(s: &Summary) {
    for c in &s.claims {
        assert!(
            !c.statement.is_empty() && !c.source.is_empty() && !c.expected.is_empty(),
            "{}: claim {} lacks a statement, source or expected",
            s.experiment,
            c.id
        );
        assert!(c.threshold.is_some(), "{}: claim {} has no threshold origin", s.experiment, c.id);
        assert!(c.evidence.is_some(), "{}: claim {} has no per-seed evidence", s.experiment, c.id);
        assert!(c.verdict.is_some(), "{}: claim {} has no verdict", s.experiment, c.id);
    }
}
