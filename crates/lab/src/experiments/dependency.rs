//! `dependency` (Liu et al. 2020, §3, Fig. 5; README `6_layer_dependency.png`;
//! docs/REFERENCES.md#liu-dependency, docs/REFERENCES.md#target-2): the residual dependency β_{i,j}
//! of a 6-layer encoder (12 sublayers) at init, from one traced forward pass on a fixed batch, for
//! Post-LN, Pre-LN and Admin (ω profiled on the same batch).
//!
//! Claims, each judged on one value per seed (an init draw; the batch is shared, so the arms of
//! one seed form a pair) by the 95 % t interval of their mean ([`crate::claim`]); thresholds as
//! before, no gates (nothing is trained):
//!
//! - `post-ln-diagonal-range`: per seed, max_i |β_ii − 0.6| < 0.15, i.e. every Post-LN β_ii in
//!   [0.45, 0.75] (theory 1/√2);
//! - `pre-ln-diagonal-decays`: per seed, the slope of ln β_ii against ln(i+1) in
//!   [−0.75, −0.25] (theory −0.5);
//! - `pre-ln-last-diagonal-small`: per seed, Pre-LN's β_NN < 0.35;
//! - `admin-tracks-pre-ln`: per seed, max_i |β_ii(Admin) − β_ii(Pre-LN)| < 0.1.
//!
//! The sabotage test (`tests/integration/sabotage_liu.rs`) swaps the Post-LN and Pre-LN arms
//! ([`Relabel`]).

use saturn_dynamics::encoder_dependency;
use saturn_layers::{ResidualScheme, Seq2Seq};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, Evidence, Rule, Threshold};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, HeatMap, Palette, Series, heat_map, line_chart};
use crate::stats::log_log_slope;
use crate::summary::Claims;
use crate::tasks::aggregate::mean;
use crate::tasks::relabel::Relabel;
use crate::tasks::scheme_label::label;
use crate::tasks::translation::{Seq2SeqShape, init_admin};
use crate::tasks::translation_data::TranslationData;

/// The config of `dependency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyConfig {
    pub model: Seq2SeqShape,
    /// Encoder layers (2 sublayers each).
    pub layers: usize,
    pub schemes: Vec<ResidualScheme>,
    /// The fixed batch: the first this many validation pairs.
    pub batch_pairs: usize,
    pub vocab: usize,
    pub max_len: usize,
    /// Sabotage only (the falsifiability tests): arms built with another scheme than their
    /// label ([`Relabel`]). Empty in both presets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<Relabel>,
}

impl ExperimentConfig for DependencyConfig {
    /// Both presets: 6 layers (the paper's figure); quick d = 64 on 64 pairs, full d = 256 on
    /// 256 pairs.
    fn preset(preset: Preset) -> Self {
        let (d, pairs) = match preset {
            Preset::Quick => (64, 64),
            Preset::Full => (256, 256),
        };
        DependencyConfig {
            model: Seq2SeqShape::of_width(d),
            layers: 6,
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn, ResidualScheme::Admin],
            batch_pairs: pairs,
            vocab: 2000,
            max_len: 64,
            relabel: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.layers == 0 || self.batch_pairs == 0 {
            return Err(LabError::Config("layers and batch_pairs must be positive".into()));
        }
        Ok(())
    }
}

/// One model's residual dependency, the part of [`saturn_dynamics::Dependency`] the claims and
/// figures use: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelDependency {
    /// `beta[i − 1][j]` = β_{i,j} for j = 0..=i (j = 0: the embedding).
    beta: Vec<Vec<f64>>,
}

impl ModelDependency {
    /// β_{i,i} for i = 1..N.
    fn diagonal(&self) -> Vec<f64> {
        self.beta.iter().enumerate().map(|(i, row)| row[i + 1]).collect()
    }
}

/// Traces every scheme × seed and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: DependencyConfig = ctx.open()?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let batch = data.fixed_batch(cfg.batch_pairs)?;
    // one cell per model: scheme × seed; a traced pass costs about width² × pairs, beside a
    // fixed part (full: ≈ 21 s a model; quick ≈ 2 s)
    let minutes = 0.03
        + 0.3
            * (cfg.model.d_model as f64 / 256.0).powi(2)
            * (cfg.layers as f64 / 6.0)
            * (cfg.batch_pairs as f64 / 256.0);
    let mut cells = Vec::new();
    for (position, &scheme) in cfg.schemes.iter().enumerate() {
        for &seed in &ctx.seeds {
            let label = format!("{}-seed{seed}", scheme.name());
            cells.push(Cell::new(seed, label, (position, scheme)).minutes(minutes));
        }
    }
    // a model's β does not depend on which other schemes run
    let key = DependencyConfig { schemes: Vec::new(), ..cfg.clone() };
    let mut traced = ctx.cells(&key, cells, |cell, _| {
        let (_, scheme) = cell.spec;
        let built = Relabel::scheme(&cfg.relabel, scheme);
        let model = Seq2Seq::<f64>::new(cfg.model.config(built, cfg.layers, 1, &data), cell.seed)?;
        init_admin(&model, &batch)?;
        let dep = encoder_dependency(&model, batch.src.view(), batch.src_mask.view())?;
        Ok(ModelDependency { beta: dep.beta })
    })?;
    // back to the order of the config (scheme outermost), as the table has always listed them
    traced.sort_by_key(|(cell, _)| cell.spec.0);
    let results: Vec<Traced> =
        traced.into_iter().map(|(cell, dep)| (cell.spec.1, cell.seed, dep)).collect();
    write_beta_table(ctx, &results)?;
    draw_figures(ctx, &cfg, &results)?;
    Ok(claims(&cfg, &results, &ctx.seeds))
}

/// One model's β: (scheme, seed, dependency).
type Traced = (ResidualScheme, u64, ModelDependency);

/// `beta.csv`: every β_ij of every model.
fn write_beta_table(ctx: &ExperimentCtx, results: &[Traced]) -> Result<()> {
    let mut table = Vec::new();
    for (scheme, seed, dep) in results {
        for (i, row) in dep.beta.iter().enumerate() {
            for (j, b) in row.iter().enumerate() {
                table.push(vec![
                    scheme.name().to_string(),
                    seed.to_string(),
                    (i + 1).to_string(),
                    j.to_string(),
                    b.to_string(),
                ]);
            }
        }
    }
    ctx.dir.write_csv("beta.csv", &["scheme", "seed", "i", "j", "beta"], &table)
}

/// `beta_diagonal` (β_ii against i, mean over seeds, with 1/√2 and 1/√(i+1)) and, for the
/// first seed, each scheme's β_ij as a heat map.
fn draw_figures(ctx: &ExperimentCtx, cfg: &DependencyConfig, results: &[Traced]) -> Result<()> {
    let n = 2 * cfg.layers;
    let diag = |scheme| seed_mean_diagonal(results, scheme, n);
    let idx: Vec<f64> = (1..=n).map(|i| i as f64).collect();
    let mut series: Vec<Series> = cfg
        .schemes
        .iter()
        .map(|&s| Series::new(label(s), idx.iter().copied().zip(diag(s)).collect()))
        .collect();
    series.push(Series::new("1/√2", idx.iter().map(|&i| (i, 0.5f64.sqrt())).collect()));
    series
        .push(Series::new("1/√(i+1)", idx.iter().map(|&i| (i, 1.0 / (i + 1.0).sqrt())).collect()));
    line_chart(
        &ctx.dir,
        "beta_diagonal",
        &Chart::new("dependency at init: β_ii, 6-layer encoder").x("sublayer i").y("β_ii"),
        &series,
    )?;
    for (scheme, seed, dep) in results.iter().filter(|r| Some(&r.1) == ctx.seeds.first()) {
        // row i, column j, blank (0) above the diagonal
        let cells: Vec<Vec<f64>> = dep
            .beta
            .iter()
            .map(|row| (0..=n).map(|j| row.get(j).copied().unwrap_or(0.0)).collect())
            .collect();
        let title = format!("β_ij at init, {} (seed {seed}); row i − 1, column j", label(*scheme));
        heat_map(
            &ctx.dir,
            &format!("beta_{}", scheme.name()),
            &HeatMap {
                title: &title,
                x_label: "component j (0 = embedding)",
                y_label: "sublayer i − 1",
                cells: &cells,
                palette: Palette::Continuous { lo: 0.0, hi: 1.0 },
            },
        )?;
    }
    Ok(())
}

/// The seed-averaged diagonal β_11 … β_nn of `scheme`.
fn seed_mean_diagonal(results: &[Traced], scheme: ResidualScheme, n: usize) -> Vec<f64> {
    let ds: Vec<Vec<f64>> =
        results.iter().filter(|r| r.0 == scheme).map(|r| r.2.diagonal()).collect();
    (0..n).map(|i| mean(&ds.iter().map(|d| d[i]).collect::<Vec<_>>())).collect()
}

/// The claims on each seed's diagonal.
fn claims(cfg: &DependencyConfig, results: &[Traced], seeds: &[u64]) -> Claims {
    let n = 2 * cfg.layers;
    let diag = |scheme| seed_mean_diagonal(results, scheme, n);
    let idx: Vec<f64> = (1..=n).map(|i| i as f64).collect();
    let mut claims = Claims::default();
    // the diagonal of each seed, in `seeds` order (NaN where an arm is missing)
    let per_seed = |scheme: ResidualScheme| -> Vec<Vec<f64>> {
        seeds
            .iter()
            .map(|&seed| {
                results
                    .iter()
                    .find(|r| r.0 == scheme && r.1 == seed)
                    .map_or_else(|| vec![f64::NAN; n], |r| r.2.diagonal())
            })
            .collect()
    };
    let has = |s| cfg.schemes.contains(&s);
    let relabelled = json!(cfg.relabel);
    if has(ResidualScheme::PostLn) {
        let ds = per_seed(ResidualScheme::PostLn);
        // [0.45, 0.75] is 0.6 ± 0.15: every β_ii in the band ⇔ the largest |β_ii − 0.6| ≤ 0.15
        let deviation: Vec<f64> = ds.iter().map(|d| max_abs(d.iter().map(|b| b - 0.6))).collect();
        claims.push(
            Claim::builder("post-ln-diagonal-range")
                .statement("At init, every Post-LN sublayer depends on its own branch with β_ii ≈ 1/√2")
                .source("Liu et al. 2020, Fig. 5 / README 6_layer_dependency.png; docs/REFERENCES.md#target-2")
                .expected(
                    "per seed, max_i |β_ii − 0.6| < 0.15, i.e. every β_ii in [0.45, 0.75] \
                     (theory 1/√2 ≈ 0.707)",
                )
                .threshold(Threshold::as_before())
                .measured("post_ln_diagonal", json!(diag(ResidualScheme::PostLn)))
                .measured("post_ln_diagonal_per_seed", json!(ds))
                .measured("relabel", relabelled.clone())
                .evidence(Evidence::new(
                    "max over sublayers i of |β_ii − 0.6| (Post-LN)",
                    seeds,
                    deviation,
                    Rule::Below(0.15),
                )),
        );
    }
    if has(ResidualScheme::PreLn) {
        let ds = per_seed(ResidualScheme::PreLn);
        let next: Vec<f64> = idx.iter().map(|i| i + 1.0).collect();
        let slopes: Vec<f64> = ds.iter().map(|d| log_log_slope(&next, d)).collect();
        let last: Vec<f64> = ds.iter().map(|d| d[n - 1]).collect();
        claims.push(
            Claim::builder("pre-ln-diagonal-decays")
                .statement("At init, Pre-LN's β_ii falls roughly as 1/√(i+1)")
                .source(
                    "Liu et al. 2020, §3 (Pre-LN: β²_ii ≈ 1/(i+1)) and Fig. 5; \
                     docs/REFERENCES.md#target-2",
                )
                .expected(
                    "per seed, the slope of ln β_ii against ln(i+1) in [−0.75, −0.25] (theory \
                     −0.5)",
                )
                .threshold(Threshold::as_before())
                .measured("pre_ln_diagonal", json!(diag(ResidualScheme::PreLn)))
                .measured("pre_ln_diagonal_per_seed", json!(ds))
                .measured("relabel", relabelled.clone())
                .evidence(Evidence::new(
                    "log-log slope of β_ii against i + 1 (Pre-LN)",
                    seeds,
                    slopes,
                    Rule::Within(-0.75, -0.25),
                )),
        );
        claims.push(
            Claim::builder("pre-ln-last-diagonal-small")
                .statement("At init, Pre-LN's last sublayer depends little on its own branch")
                .source(
                    "Liu et al. 2020, §3 (Pre-LN: β²_NN ≈ 1/(N+1), 1/√13 ≈ 0.28 at N = 12) and \
                     Fig. 5; docs/REFERENCES.md#target-2",
                )
                .expected(format!("per seed, β_NN < 0.35 (N = {n})"))
                .threshold(Threshold::as_before())
                .measured("sublayers", json!(n))
                .measured("relabel", relabelled.clone())
                .evidence(Evidence::new(
                    "β_NN of the last sublayer (Pre-LN)",
                    seeds,
                    last,
                    Rule::Below(0.35),
                )),
        );
    }
    if has(ResidualScheme::PreLn) && has(ResidualScheme::Admin) {
        // paired by seed: Admin and Pre-LN models of the same seed on the same batch
        let gaps: Vec<f64> = per_seed(ResidualScheme::Admin)
            .iter()
            .zip(per_seed(ResidualScheme::PreLn))
            .map(|(a, p)| max_abs(a.iter().zip(&p).map(|(x, y)| x - y)))
            .collect();
        claims.push(
            Claim::builder("admin-tracks-pre-ln")
                .statement("At init, Admin's dependency looks like Pre-LN's")
                .source(
                    "Liu et al. 2020, §4.2 and README 18_layer_dependency.png; \
                     docs/REFERENCES.md#target-2",
                )
                .expected("per seed, max_i |β_ii(Admin) − β_ii(Pre-LN)| < 0.1 (paired by seed)")
                .threshold(Threshold::as_before())
                .measured("admin_diagonal", json!(diag(ResidualScheme::Admin)))
                .measured("pre_ln_diagonal", json!(diag(ResidualScheme::PreLn)))
                .measured("relabel", relabelled)
                .evidence(Evidence::new(
                    "max over i of |β_ii(Admin) − β_ii(Pre-LN)|, same seed",
                    seeds,
                    gaps,
                    Rule::Below(0.1),
                )),
        );
    }
    claims
}

/// The largest |v| of `values`; NaN if any is NaN (an undefined value is never a pass) or
/// there is none.
fn max_abs(values: impl Iterator<Item = f64>) -> f64 {
    let mut worst = f64::NAN;
    for v in values {
        if v.is_nan() {
            return f64::NAN;
        }
        worst = if worst.is_nan() { v.abs() } else { worst.max(v.abs()) };
    }
    worst
}
