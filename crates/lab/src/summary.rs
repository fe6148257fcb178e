//! `summary.json`: what an experiment claims, what it measured, and whether each claim holds.
//!
//! Schema (relied on by tooling and the report):
//! `{"experiment", "preset", "seeds", "wall_seconds", "claims": [{"id", "statement", "source",
//! "expected", "measured": {…}, "holds"}], "metadata": {…}}`. `holds` is computed by the
//! experiment's code from `measured`, with thresholds fixed in its source before the run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Preset;
use crate::metadata::Metadata;

/// One claim of a paper, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub statement: String,
    /// Paper, section / figure / table.
    pub source: String,
    /// The criterion, in words, with its threshold.
    pub expected: String,
    pub measured: BTreeMap<String, serde_json::Value>,
    pub holds: bool,
}

/// The summary of one experiment run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub experiment: String,
    pub preset: Preset,
    /// Every seed the run covers: the command's, extended by the config where it asks for more.
    pub seeds: Vec<u64>,
    /// The wall time of the process that wrote this summary.
    pub wall_seconds: f64,
    /// Whether that process continued earlier ones (`--resume`): its wall time is then only
    /// the last part of the run's (absent in records made before it was kept).
    #[serde(default)]
    pub resumed: bool,
    pub claims: Vec<Claim>,
    pub metadata: Metadata,
}

/// Builds the claims of a summary.
#[derive(Debug, Default)]
pub struct Claims {
    pub list: Vec<Claim>,
    /// The seeds the experiment ran when its config extends the command's (`seeds_for`);
    /// `None`: exactly the command's seeds. The summary records these.
    pub seeds: Option<Vec<u64>>,
}

impl Claims {
    /// Records that the experiment ran `seeds` (rather than only the command's).
    pub fn ran_seeds(&mut self, seeds: &[u64]) {
        self.seeds = Some(seeds.to_vec());
    }

    /// Adds a claim; `measured` holds the numbers `holds` was computed from.
    pub fn add(
        &mut self,
        id: &str,
        statement: &str,
        source: &str,
        expected: &str,
        measured: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
        holds: bool,
    ) {
        self.list.push(Claim {
            id: id.to_string(),
            statement: statement.to_string(),
            source: source.to_string(),
            expected: expected.to_string(),
            measured: measured.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            holds,
        });
    }
}
