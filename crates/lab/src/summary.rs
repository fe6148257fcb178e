//! `summary.json`: what an experiment claims, what it measured, and the verdict of each claim.
//!
//! Schema 2 (relied on by tooling and the report):
//!
//! ```text
//! {"schema": 2, "experiment", "preset", "seeds": [...], "preset_seeds", "partial",
//!  "wall_seconds", "resumed",
//!  "claims": [{"id", "statement", "source", "expected",
//!              "threshold": {"origin": "source" | "ours" | "as-before", "note"},
//!              "measured": {...},
//!              "evidence": {"statistic", "seeds", "values", "rule": {"above": t} | {"below": t}
//!                           | {"within": [a, b]}, "interval": {"method", "level", "estimate",
//!                           "low", "high", "n"} | null},
//!              "gates": [{"what", "met", "measured"}],
//!              "verdict": "holds" | "fails" | "inconclusive", "reason", "holds"}],
//!  "metadata": {...},
//!  "cells": {"count", "processes", "cell_seconds", "missing": [...]}}
//! ```
//!
//! `verdict` is computed by [`crate::claim`] from `evidence` and `gates`; `holds` is true only
//! for `holds`. Records of schema 1 (no `schema` field) have no verdict, evidence or gates: the
//! report shows them as `legacy`.

use serde::{Deserialize, Serialize};

pub use crate::claim::{Claim, Claims};
use crate::config::Preset;
use crate::metadata::Metadata;

/// The schema this code writes.
pub const SCHEMA: u32 = 2;

fn legacy_schema() -> u32 {
    1
}

/// The summary of one experiment run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// 2 for summaries with verdicts; 1 (absent) for legacy records.
    #[serde(default = "legacy_schema")]
    pub schema: u32,
    pub experiment: String,
    pub preset: Preset,
    /// Every seed the run covers: the command's, extended by the config where it asks for more.
    pub seeds: Vec<u64>,
    /// How many seeds the preset asks for (0 in legacy records).
    #[serde(default)]
    pub preset_seeds: usize,
    /// Folded into the record with fewer seeds than the preset asks for (`--allow-partial`).
    #[serde(default)]
    pub partial: bool,
    /// The wall time of the process that wrote this summary.
    pub wall_seconds: f64,
    /// Whether that process continued earlier ones (`--resume`): its wall time is then only
    /// the last part of the run's (absent in records made before it was kept).
    #[serde(default)]
    pub resumed: bool,
    pub claims: Vec<Claim>,
    pub metadata: Metadata,
    /// How many cells the run is made of, from how many processes, and which are missing
    /// (absent in records made before cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<crate::cells::CellsRecord>,
}

impl Summary {
    /// Whether the run has the seeds its preset asks for (legacy records: unknown, so yes).
    pub fn has_preset_seeds(&self) -> bool {
        self.seeds.len() >= self.preset_seeds
    }

    /// (holds, fails, inconclusive) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        use crate::claim::Verdict;
        let n = |v| self.claims.iter().filter(|c| c.outcome() == v).count();
        (n(Verdict::Holds), n(Verdict::Fails), n(Verdict::Inconclusive))
    }
}
