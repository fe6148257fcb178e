//! What the head experiments (`heads`, `heads-minilm`, `counting`) report about a model's
//! attention heads under saturation: the per-head table, the class heat map, the histogram of
//! positions attended, and the class shares their claims read.

use saturn_saturation::{HeadClass, HeadStats, class_counts};
use serde_json::json;

use crate::error::Result;
use crate::plot::{Chart, HeatMap, Palette, heat_map, histogram};
use crate::run_dir::RunDir;

/// Writes `heads.csv` (one row per head) for `stats` of the runs.
pub fn write_head_table(dir: &RunDir, name: &str, runs: &[(String, Vec<HeadStats>)]) -> Result<()> {
    let header = [
        "run",
        "layer",
        "head",
        "class",
        "mean_count",
        "std_count",
        "split_fraction",
        "mean_prefix",
        "prefix_fraction",
        "entropy",
        "first_token_mass",
        "future_support_fraction",
        "queries",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|(run, stats)| {
            stats.iter().map(move |s| {
                vec![
                    run.clone(),
                    s.layer.clone(),
                    s.head.to_string(),
                    s.class.name().into(),
                    s.mean_count.to_string(),
                    s.std_count.to_string(),
                    s.split_fraction.to_string(),
                    s.mean_prefix.to_string(),
                    s.prefix_fraction.to_string(),
                    s.entropy.to_string(),
                    s.first_token_mass.to_string(),
                    s.future_support_fraction.to_string(),
                    s.queries.to_string(),
                ]
            })
        })
        .collect();
    dir.write_csv(name, &header, &rows)
}

/// The class table of one model as heat-map cells: one row per layer, one column per head,
/// the class's index in [`HeadClass::ALL`].
fn class_cells(stats: &[HeadStats]) -> Vec<Vec<f64>> {
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for s in stats {
        let v = HeadClass::ALL.iter().position(|c| *c == s.class).unwrap_or(0) as f64;
        match rows.iter_mut().find(|(l, _)| *l == s.layer) {
            Some((_, r)) => r.push(v),
            None => rows.push((s.layer.clone(), vec![v])),
        }
    }
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Draws the class table of one model as a heat map (`name`.svg/.png in `dir`): one row per
/// layer, one column per head, coloured by class.
pub fn draw_class_map(dir: &RunDir, name: &str, title: &str, stats: &[HeadStats]) -> Result<()> {
    heat_map(
        dir,
        name,
        &HeatMap {
            title,
            x_label: "head",
            y_label: "layer",
            cells: &class_cells(stats),
            palette: Palette::Categories(&CLASS_NAMES),
        },
    )
}

/// The names of [`HeadClass::ALL`], for heat-map legends.
pub const CLASS_NAMES: [&str; 4] = ["averaging", "sink", "hard", "mixed"];

/// The class counts as a JSON object.
pub fn class_json(stats: &[HeadStats]) -> serde_json::Value {
    serde_json::Value::Object(
        class_counts(stats).into_iter().map(|(c, n)| (c.name().to_string(), json!(n))).collect(),
    )
}

/// (hard + averaging heads) / heads.
pub fn hard_or_averaging_share(stats: &[HeadStats]) -> f64 {
    let n = stats.iter().filter(|h| matches!(h.class, HeadClass::Hard | HeadClass::Averaging));
    n.count() as f64 / stats.len().max(1) as f64
}

/// The number of heads of `class`.
pub fn class_count(stats: &[HeadStats], class: HeadClass) -> usize {
    stats.iter().filter(|h| h.class == class).count()
}

/// Draws `positions_attended`.svg/.png in `dir`: the histogram of each model's per-head mean
/// number of keys attended, in bins of width 2 from 0.5 to 2·`bins` + 0.5 (so a hard head,
/// about one key, falls in the first); `chart` gives the title and x axis, the y axis counts
/// heads.
pub fn draw_positions_attended(
    dir: &RunDir,
    chart: &Chart<'_>,
    bins: usize,
    models: &[(String, Vec<HeadStats>)],
) -> Result<()> {
    let edges: Vec<f64> = (0..=bins).map(|i| 2.0 * i as f64 + 0.5).collect();
    let counts: Vec<(String, Vec<f64>)> = models
        .iter()
        .map(|(label, stats)| (label.clone(), stats.iter().map(|h| h.mean_count).collect()))
        .collect();
    histogram(dir, "positions_attended", &chart.clone().y("heads"), &edges, &counts)
}
