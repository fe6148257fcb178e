//! `amplification` (Liu et al. 2020, §4.1, Theorem 2 and Fig. 4; README `output_change.png`;
//! docs/REFERENCES.md#liu-amplification, docs/REFERENCES.md#target-1): perturb every weight matrix
//! of an encoder by η·sign(N(0, 1)) and measure the change of its output, ‖F(x, W) − F(x, W + δ)‖²
//! summed over the real tokens of one fixed batch, in eval mode, averaged over δ seeds, for N
//! sublayers and each residual scheme at init (Admin with ω profiled on the same batch).
//!
//! Every arm draws q, k, v as Transformer-Clinic does, one fused (3d × d) Xavier matrix
//! ([`QkvInit::Fused`]).
//!
//! Claims, each judged on one value per seed (the seeds are init draws; the δ seeds and the fixed
//! batch are shared across arms, so Post-LN and Pre-LN of one seed form a pair), by the 95 % t
//! interval of their mean ([`crate::claim`]); every threshold is Theorem 2's linear boundary or
//! ours with the reason (docs/REFERENCES.md#target-1):
//!
//! - `post-ln-linear`: per seed, R² of the line change ~ N over the N grid > 0.95 (ours: the
//!   figure's Post-LN points give R² = 0.9997 but the paper states no fit criterion); undefined
//!   (so never a pass) when the change does not vary with N.
//! - `pre-ln-admin-sublinear`: per seed, the larger of Pre-LN's and Admin's log-log slopes of
//!   change against N < 1 (Theorem 2: O(log N) against O(N); the figure's slopes are 0.58 and
//!   0.61 over N = 6 … 50).
//! - `post-pre-ratio-increases`: per seed, the log-log slope of the paired ratio
//!   change(Post-LN) / change(Pre-LN) against N > 0 (Theorem 2: N / log N grows; the figure's
//!   ratio 1.47 → 4.3 over N = 6 … 50, slope 0.51).
//! - `post-pre-ratio-increases-widest` (when `scale_widths` is set): the same slope at the widest
//!   scale width (d = 512 at full, the paper's width), from the scale cells.
//!
//! Scale (issue 22): `scale_widths` adds cells for Post-LN and Pre-LN at each width (labels like
//! `post-n12-d512-seed3`; the main cells keep theirs) on a shorter N grid (`scale_sublayers`),
//! fewer pairs (`scale_pairs`) and no gradient-sign pass, so that d = 512 fits; `scale.png` shows
//! Post-LN's and Pre-LN's exponents and the ratio's slope against d.
//!
//! No gates: nothing is trained. A change of 0 (η below round-off) makes every slope and ratio
//! undefined, hence inconclusive. Also recorded: the change for δ = −η_g·sign(∇L) (the
//! reference's `--gradient_as_delta`) and Σ_i β²_{i,i}, which Theorem 2 makes the change
//! proportional to. The sabotage tests (`tests/integration/sabotage_liu.rs`) relabel Pre-LN as Post-LN
//! ([`Relabel`]) and shrink η below round-off.

use saturn_dynamics::{
    encoder_dependency, linear_fit, output_change, output_change_along_gradient,
};
use saturn_layers::{ForwardCtx, Module, QkvInit, ResidualScheme, Seq2Seq};
use saturn_tensor::{Tensor, grad};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, ClaimBuilder, Evidence, Rule, Threshold};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::stats::log_log_slope;
use crate::summary::Claims;
use crate::tasks::aggregate::mean;
use crate::tasks::relabel::Relabel;
use crate::tasks::scale::{ScaleTrend, scale_chart};
use crate::tasks::scheme_label::label;
use crate::tasks::translation::{Seq2SeqShape, init_admin};
use crate::tasks::translation_data::{SeqBatch, TranslationData};
use crate::tasks::width::{at_width, check_widths};
use crate::train::derive_seed;

/// The config of `amplification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmplificationConfig {
    pub model: Seq2SeqShape,
    pub schemes: Vec<ResidualScheme>,
    /// Encoder depths in sublayers (2 per layer: even numbers).
    pub sublayers: Vec<usize>,
    /// η of the random-sign perturbation (the reference's 1e-4).
    pub eta: f64,
    /// δ seeds averaged per model.
    pub delta_seeds: usize,
    /// η of the gradient-sign perturbation (the reference's 1e-6); none to skip it.
    #[serde(default)]
    pub gradient_eta: Option<f64>,
    /// The fixed batch: the first this many validation pairs.
    pub batch_pairs: usize,
    pub vocab: usize,
    pub max_len: usize,
    /// Sabotage only (the falsifiability tests): arms built with another scheme than their
    /// label. Empty in both presets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<Relabel>,
    /// Widths of the scale cells (Post-LN and Pre-LN only; none: no scale cells).
    #[serde(default)]
    pub scale_widths: Vec<usize>,
    /// The N grid of the scale cells (shorter than `sublayers`, so that d = 512 fits).
    #[serde(default)]
    pub scale_sublayers: Vec<usize>,
    /// The fixed batch of the scale cells: the first this many validation pairs.
    #[serde(default)]
    pub scale_pairs: usize,
}

impl ExperimentConfig for AmplificationConfig {
    /// quick: d = 64, N up to 24, 32 pairs, no gradient-sign pass (≈ 40 s); full: d = 128, N
    /// up to 48, 128 pairs (the gradient-sign pass holds a 48-sublayer f64 graph, several GB),
    /// and scale cells at d = 64 … 512 on N = 6, 12, 24 with 16 pairs (d = 512: 0.8 GB). Models are f64, so η = 1e-4 and 1e-6 moves are far above round-off. Both
    /// with the reference's fused q/k/v init.
    fn preset(preset: Preset) -> Self {
        let (d, pairs, sublayers, gradient_eta, scale_widths) = match preset {
            Preset::Quick => (64, 32, vec![6, 12, 24], None, Vec::new()),
            Preset::Full => (128, 128, vec![6, 12, 24, 48], Some(1e-6), vec![64, 128, 256, 512]),
        };
        AmplificationConfig {
            model: Seq2SeqShape { qkv_init: QkvInit::Fused, ..Seq2SeqShape::of_width(d) },
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn, ResidualScheme::Admin],
            sublayers,
            eta: 1e-4,
            delta_seeds: 5,
            gradient_eta,
            batch_pairs: pairs,
            vocab: 2000,
            max_len: 64,
            relabel: Vec::new(),
            scale_widths,
            scale_sublayers: vec![6, 12, 24],
            scale_pairs: 16,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad_grid = |grid: &[usize]| {
            grid.len() < 3
                || grid.iter().any(|&n| n == 0 || n % 2 == 1)
                || grid.windows(2).any(|w| w[1] <= w[0])
        };
        if bad_grid(&self.sublayers)
            || (!self.scale_widths.is_empty() && bad_grid(&self.scale_sublayers))
        {
            return Err(LabError::Config(
                "sublayers must be ≥ 3 increasing even numbers (2 per encoder layer)".into(),
            ));
        }
        if self.delta_seeds == 0 || self.batch_pairs == 0 || self.eta.is_nan() || self.eta <= 0.0 {
            return Err(LabError::Config(
                "delta_seeds, batch_pairs and eta must be positive".into(),
            ));
        }
        check_widths(&self.scale_widths, self.model.n_heads)?;
        if !self.scale_widths.is_empty() && self.scale_pairs == 0 {
            return Err(LabError::Config("scale_pairs must be positive".into()));
        }
        Ok(())
    }
}

/// One model's measurements: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    scheme: ResidualScheme,
    sublayers: usize,
    seed: u64,
    change: f64,
    per_delta: Vec<f64>,
    gradient_change: Option<f64>,
    beta_square_sum: f64,
}

/// A cell: scheme, N, and the width of a scale cell (`None`: a main cell).
type Spec = (ResidualScheme, usize, Option<usize>);

/// Measures every scheme × depth × seed (and the scale cells) and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: AmplificationConfig = ctx.open()?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let batch = data.fixed_batch(cfg.batch_pairs)?;
    let scale_batch = data.fixed_batch(cfg.scale_pairs.max(1))?;
    // one cell per model: scheme × depth × seed; its cost grows with the depth, the width² and
    // the pairs (measured: see `minutes`)
    let mut cells = Vec::new();
    for &scheme in &cfg.schemes {
        for &n in &cfg.sublayers {
            for &seed in &ctx.seeds {
                let label = format!("{}-n{n}-seed{seed}", scheme.name());
                let minutes = minutes(n, cfg.model.d_model, cfg.batch_pairs, true);
                cells.push(Cell::new(seed, label, (scheme, n, None)).minutes(minutes));
            }
        }
    }
    for &d in &cfg.scale_widths {
        for scheme in scale_schemes(&cfg) {
            for &n in &cfg.scale_sublayers {
                for &seed in &ctx.seeds {
                    let label = format!("{}-n{n}-d{d}-seed{seed}", scheme.name());
                    let minutes = minutes(n, d, cfg.scale_pairs, false);
                    cells.push(Cell::new(seed, label, (scheme, n, Some(d))).minutes(minutes));
                }
            }
        }
    }
    // a model's measurement does not depend on which other schemes and depths run
    let key = AmplificationConfig {
        schemes: Vec::new(),
        sublayers: Vec::new(),
        scale_widths: Vec::new(),
        ..cfg.clone()
    };
    let measured: Vec<(Spec, Row)> = ctx
        .cells(&key, cells, |cell, _| {
            let (scheme, n, width) = cell.spec;
            let built = Relabel::scheme(&cfg.relabel, scheme);
            let row = match width {
                None => {
                    measure(&cfg, &cfg.model, &data, &batch, cfg.gradient_eta, built, n, cell.seed)?
                }
                Some(d) => {
                    let shape = at_width(&cfg.model, d);
                    measure(&cfg, &shape, &data, &scale_batch, None, built, n, cell.seed)?
                }
            };
            Ok(Row { scheme, ..row })
        })?
        .into_iter()
        .map(|(cell, row)| (cell.spec, row))
        .collect();
    let rows: Vec<Row> =
        measured.iter().filter(|(spec, _)| spec.2.is_none()).map(|(_, r)| r.clone()).collect();
    write_table(ctx, &rows)?;
    draw_figures(ctx, &cfg, &rows)?;
    let mut claims = claims(&cfg, &rows, &ctx.seeds);
    if !cfg.scale_widths.is_empty() {
        let trends = scale_trends(&cfg, &measured, &ctx.seeds);
        scale_chart(
            &ctx.dir,
            "scale",
            "amplification against width: log-log slopes of the output change in N",
            "log-log slope against N",
            &trends,
        )?;
        claims.push(scale_claim(&cfg, &trends, &ctx.seeds));
    }
    Ok(claims)
}

/// The arms of the scale cells: Post-LN and Pre-LN, those of `schemes`.
fn scale_schemes(cfg: &AmplificationConfig) -> Vec<ResidualScheme> {
    [ResidualScheme::PostLn, ResidualScheme::PreLn]
        .into_iter()
        .filter(|s| cfg.schemes.contains(s))
        .collect()
}

/// Core-minutes of one model: N sublayers of width d on `pairs` pairs, with or without the
/// gradient-sign pass, scaled as N · d^1.5 · pairs, measured on one core (code of this change):
/// the quick preset (d = 64, 32 pairs, 27 models) took 0.095 s per sublayer without the gradient
/// pass (N up to 48: 77 s) and 0.15 s with it (N up to 24: 57 s); the full preset's
/// `post-n24-d512-seed0` (16 pairs, no gradient pass) took 28 s, 12× d = 64's per-sublayer cost
/// for 8× the width and half the pairs, i.e. d^1.5 rather than d².
fn minutes(n: usize, d: usize, pairs: usize, gradient: bool) -> f64 {
    let base = 0.0016 * n as f64 * (d as f64 / 64.0).powf(1.5) * (pairs as f64 / 32.0);
    0.01 + if gradient { 1.6 * base } else { base }
}

/// One curve of the change over `grid` per seed, for `scheme` at `width` (`None`: the main
/// cells); NaN where a cell is missing.
fn curves(
    measured: &[(Spec, Row)],
    seeds: &[u64],
    grid: &[usize],
    scheme: ResidualScheme,
    width: Option<usize>,
) -> Vec<Vec<f64>> {
    seeds
        .iter()
        .map(|&seed| {
            grid.iter()
                .map(|&n| {
                    measured
                        .iter()
                        .find(|(s, r)| s.0 == scheme && s.1 == n && s.2 == width && r.seed == seed)
                        .map_or(f64::NAN, |(_, r)| r.change)
                })
                .collect()
        })
        .collect()
}

/// The paired Post-LN / Pre-LN ratio of each seed's curves.
fn paired_ratios(post: &[Vec<f64>], pre: &[Vec<f64>]) -> Vec<Vec<f64>> {
    post.iter().zip(pre).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x / y).collect()).collect()
}

/// Per width: Post-LN's and Pre-LN's log-log slopes of change against N, and the ratio's.
fn scale_trends(
    cfg: &AmplificationConfig,
    measured: &[(Spec, Row)],
    seeds: &[u64],
) -> Vec<ScaleTrend> {
    let ns: Vec<f64> = cfg.scale_sublayers.iter().map(|&n| n as f64).collect();
    let slopes = |c: &[Vec<f64>]| -> Vec<f64> { c.iter().map(|c| log_log_slope(&ns, c)).collect() };
    let at = |scheme, d| curves(measured, seeds, &cfg.scale_sublayers, scheme, Some(d));
    let per_width = |f: &dyn Fn(usize) -> Vec<f64>| -> Vec<(usize, Vec<f64>)> {
        cfg.scale_widths.iter().map(|&d| (d, f(d))).collect()
    };
    vec![
        ScaleTrend::new("Post-LN exponent", per_width(&|d| slopes(&at(ResidualScheme::PostLn, d)))),
        ScaleTrend::new("Pre-LN exponent", per_width(&|d| slopes(&at(ResidualScheme::PreLn, d)))),
        ScaleTrend::new(
            "Post/Pre ratio slope",
            per_width(&|d| {
                slopes(&paired_ratios(
                    &at(ResidualScheme::PostLn, d),
                    &at(ResidualScheme::PreLn, d),
                ))
            }),
        ),
    ]
}

/// `post-pre-ratio-increases-widest`: the ratio's slope at the widest scale width.
fn scale_claim(cfg: &AmplificationConfig, trends: &[ScaleTrend], seeds: &[u64]) -> ClaimBuilder {
    let ratio = &trends[2];
    let widest = cfg.scale_widths.last().copied().unwrap_or(0);
    let table: Vec<_> = trends
        .iter()
        .map(|t| json!({"label": t.label, "bands": t.bands(), "points": t.points}))
        .collect();
    Claim::builder("post-pre-ratio-increases-widest")
        .statement(format!(
            "At the widest scale width (d = {widest}), the Post-LN / Pre-LN output-change ratio \
             still increases with N"
        ))
        .source(
            "Liu et al. 2020, Theorem 2 and README output_change.png (d = 512); \
             docs/REFERENCES.md#target-1",
        )
        .expected(format!(
            "per seed, the log-log slope of the paired ratio against N over {:?} at d = {widest} \
             > 0",
            cfg.scale_sublayers
        ))
        .threshold(Threshold::from_source(
            "Theorem 2: Post-LN O(N) over Pre-LN O(log N) grows as N / log N, slope > 0; the \
             figure (d = 512) gives 1.47 → 4.3 over N = 6 … 50, slope 0.51; the claim is the sign",
        ))
        .measured("scale_widths", json!(cfg.scale_widths))
        .measured("scale_sublayers", json!(cfg.scale_sublayers))
        .measured("scale_pairs", json!(cfg.scale_pairs))
        .measured("trends", json!(table))
        .measured("ratio_slope_per_seed_log_log_in_d", json!(ratio.log_log_slope_per_seed()))
        .measured("relabel", json!(cfg.relabel))
        .evidence(Evidence::new(
            format!("log-log slope of the paired ratio Post-LN / Pre-LN against N at d = {widest}"),
            seeds,
            ratio.widest().to_vec(),
            Rule::Above(0.0),
        ))
}

/// The mean over seeds of `f` at each N of the grid, for `scheme`.
fn seed_mean_curve(
    cfg: &AmplificationConfig,
    rows: &[Row],
    scheme: ResidualScheme,
    f: &dyn Fn(&Row) -> f64,
) -> Vec<f64> {
    cfg.sublayers
        .iter()
        .map(|&n| {
            let v: Vec<f64> =
                rows.iter().filter(|r| r.scheme == scheme && r.sublayers == n).map(f).collect();
            mean(&v)
        })
        .collect()
}

/// `output_change` and `beta_square_sum` against N, one line per scheme (mean over seeds).
fn draw_figures(ctx: &ExperimentCtx, cfg: &AmplificationConfig, rows: &[Row]) -> Result<()> {
    let curve = |scheme, f: &dyn Fn(&Row) -> f64| seed_mean_curve(cfg, rows, scheme, f);
    let ns: Vec<f64> = cfg.sublayers.iter().map(|&n| n as f64).collect();
    let series = |f: &dyn Fn(&Row) -> f64| -> Vec<Series> {
        cfg.schemes
            .iter()
            .map(|&s| Series::new(label(s), ns.iter().copied().zip(curve(s, f)).collect()))
            .collect()
    };
    line_chart(
        &ctx.dir,
        "output_change",
        &Chart::new("amplification: encoder output change under W + η·sign(N(0,1))")
            .x("encoder sublayers N")
            .y("‖F(x,W) − F(x,W+δ)‖² (sum over tokens)"),
        &series(&|r| r.change),
    )?;
    line_chart(
        &ctx.dir,
        "beta_square_sum",
        &Chart::new("amplification: Σ_i β²_ii (Theorem 2's predictor)")
            .x("encoder sublayers N")
            .y("Σ_i β_ii²"),
        &series(&|r| r.beta_square_sum),
    )?;
    Ok(())
}

/// The three claims, each on one value per seed over the N grid.
fn claims(cfg: &AmplificationConfig, rows: &[Row], seeds: &[u64]) -> Claims {
    let curve = |scheme, f: &dyn Fn(&Row) -> f64| seed_mean_curve(cfg, rows, scheme, f);
    let ns: Vec<f64> = cfg.sublayers.iter().map(|&n| n as f64).collect();
    let mut claims = Claims::default();
    let has = |s| cfg.schemes.contains(&s);
    // one curve over the N grid per seed and arm
    let per_seed = |scheme: ResidualScheme| -> Vec<Vec<f64>> {
        seeds
            .iter()
            .map(|&seed| {
                cfg.sublayers
                    .iter()
                    .map(|&n| {
                        rows.iter()
                            .find(|r| r.scheme == scheme && r.sublayers == n && r.seed == seed)
                            .map_or(f64::NAN, |r| r.change)
                    })
                    .collect()
            })
            .collect()
    };
    let (post, pre, admin) = (
        per_seed(ResidualScheme::PostLn),
        per_seed(ResidualScheme::PreLn),
        per_seed(ResidualScheme::Admin),
    );
    let exponents = |curves: &[Vec<f64>]| -> Vec<f64> {
        curves.iter().map(|c| log_log_slope(&ns, c)).collect()
    };
    let grid = json!(cfg.sublayers);
    let relabelled = json!(cfg.relabel);
    if has(ResidualScheme::PostLn) {
        let r2: Vec<f64> = post.iter().map(|c| r_squared(&ns, c)).collect();
        let mean_curve = curve(ResidualScheme::PostLn, &|r| r.change);
        claims.push(
            Claim::builder("post-ln-linear")
                .statement("Post-LN's output change grows linearly with the number of sublayers N")
                .source(
                    "Liu et al. 2020, Theorem 2 (Post-LN: O(N)) and README output_change.png; \
                     docs/REFERENCES.md#target-1",
                )
                .expected(
                    "per seed, R² of the least-squares line through (N, change) > 0.95 \
                     (undefined when the change does not vary with N)",
                )
                .threshold(Threshold::ours(
                    "Theorem 2 says O(N) without a fit criterion; README output_change.png's \
                     Post-LN points (N = 6, 18, ≈ 50, 200: ≈ 47, 160, 475, 2100, \
                     docs/REFERENCES.md#liu-amplification) give R² = 0.9997; 0.95 leaves room \
                     for init noise on a 3–4-point grid",
                ))
                .measured("sublayers", grid.clone())
                .measured("post_ln_change", json!(mean_curve))
                .measured("post_ln_change_per_seed", json!(post))
                .measured("post_ln_log_log_slope_per_seed", json!(exponents(&post)))
                .measured(
                    "post_max_over_min",
                    json!(mean_curve.last().copied().unwrap_or(f64::NAN) / mean_curve[0]),
                )
                .measured("relabel", relabelled.clone())
                .evidence(Evidence::new(
                    "R² of the line change ~ N over the N grid (Post-LN)",
                    seeds,
                    r2,
                    Rule::Above(0.95),
                )),
        );
    }
    if has(ResidualScheme::PreLn) && has(ResidualScheme::Admin) {
        let (pre_p, admin_p) = (exponents(&pre), exponents(&admin));
        // the larger exponent of the two arms (NaN if either is undefined: never a pass)
        let worst: Vec<f64> = pre_p
            .iter()
            .zip(&admin_p)
            .map(|(&a, &b)| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
            .collect();
        claims.push(
            Claim::builder("pre-ln-admin-sublinear")
                .statement("Pre-LN's and Admin's output change grow sublinearly in N")
                .source(
                    "Liu et al. 2020, Theorem 2 (Pre-LN and Admin at init: O(log N)); \
                     docs/REFERENCES.md#target-1",
                )
                .expected(
                    "per seed, the larger of Pre-LN's and Admin's log-log slopes of change \
                     against N < 1 (1 = proportional growth)",
                )
                .threshold(Threshold::from_source(
                    "Theorem 2: O(log N) against Post-LN's O(N), whose log-log slope is 1; \
                     README output_change.png gives Pre-LN 32 → 110 and Admin 30 → 110 over \
                     N = 6 … 50, slopes 0.58 and 0.61 (docs/REFERENCES.md#liu-amplification); \
                     the boundary is the linear slope 1",
                ))
                .measured("sublayers", grid.clone())
                .measured("pre_ln_change", json!(curve(ResidualScheme::PreLn, &|r| r.change)))
                .measured("admin_change", json!(curve(ResidualScheme::Admin, &|r| r.change)))
                .measured("pre_ln_log_log_slope_per_seed", json!(pre_p))
                .measured("admin_log_log_slope_per_seed", json!(admin_p))
                .measured("relabel", relabelled.clone())
                .evidence(Evidence::new(
                    "max(Pre-LN, Admin) log-log slope of change against N",
                    seeds,
                    worst,
                    Rule::Below(1.0),
                )),
        );
    }
    if has(ResidualScheme::PostLn) && has(ResidualScheme::PreLn) {
        // paired by seed: Post-LN and Pre-LN models of the same seed
        let ratios = paired_ratios(&post, &pre);
        let slopes = exponents(&ratios);
        claims.push(
            Claim::builder("post-pre-ratio-increases")
                .statement("The Post-LN / Pre-LN output-change ratio increases with N")
                .source("Liu et al. 2020, Fig. 4 / README output_change.png; docs/REFERENCES.md#target-1")
                .expected(
                    "per seed, the log-log slope of the paired ratio change(Post-LN) / \
                     change(Pre-LN) against N > 0 (undefined when a change is 0)",
                )
                .threshold(Threshold::from_source(
                    "Theorem 2: O(N) / O(log N) = N / log N increases, slope > 0; README \
                     output_change.png's ratio 47/32 = 1.47 at N = 6 → 475/110 = 4.3 at N ≈ 50 \
                     is a slope of 0.51 (docs/REFERENCES.md#liu-amplification); the claim is \
                     the sign",
                ))
                .measured("sublayers", grid)
                .measured(
                    "post_over_pre",
                    json!(
                        curve(ResidualScheme::PostLn, &|r| r.change)
                            .iter()
                            .zip(curve(ResidualScheme::PreLn, &|r| r.change))
                            .map(|(a, b)| a / b)
                            .collect::<Vec<_>>()
                    ),
                )
                .measured("post_over_pre_per_seed", json!(ratios))
                .measured("relabel", relabelled)
                .evidence(Evidence::new(
                    "log-log slope of the paired ratio Post-LN / Pre-LN against N",
                    seeds,
                    slopes,
                    Rule::Above(0.0),
                )),
        );
    }
    claims
}

/// R² of the least-squares line through (x, y); NaN when it is undefined (y constant, e.g. a
/// change that is 0 at every N, or a non-finite value) — never the passing 1 of a flat line.
fn r_squared(x: &[f64], y: &[f64]) -> f64 {
    let constant = y.windows(2).all(|w| w[0] == w[1]);
    match linear_fit(x, y) {
        Ok(fit) if !constant => fit.r2,
        _ => f64::NAN,
    }
}

/// One scheme × depth × seed: the random-sign change (mean over δ seeds), the gradient-sign
/// change and Σβ²_ii, on an f64 model.
#[allow(clippy::too_many_arguments)]
fn measure(
    cfg: &AmplificationConfig,
    shape: &Seq2SeqShape,
    data: &TranslationData,
    batch: &SeqBatch,
    gradient_eta: Option<f64>,
    scheme: ResidualScheme,
    sublayers: usize,
    seed: u64,
) -> Result<Row> {
    let real_rows: Vec<bool> = batch.src_mask.iter().copied().collect();
    let real_rows = real_rows.as_slice();
    let model = Seq2Seq::<f64>::new(shape.config(scheme, sublayers / 2, 1, data), seed)?;
    init_admin(&model, batch)?;
    let params = model.named_parameters();
    let forward = || {
        model.encode(batch.src.view(), batch.src_mask.view(), &mut ForwardCtx::eval()).map(|e| e.1)
    };
    let delta_seeds: Vec<u64> =
        (0..cfg.delta_seeds as u64).map(|k| derive_seed(seed, 21, k)).collect();
    let change = output_change(&params, cfg.eta, &delta_seeds, Some(real_rows), forward)?;
    let gradient_change = match gradient_eta {
        Some(eta) => {
            let loss = batch.loss(&model, &mut ForwardCtx::eval())?;
            let tensors: Vec<Tensor<f64>> = params.iter().map(|(_, p)| p.clone()).collect();
            let grads = grad(&[loss], &tensors, false)?;
            Some(output_change_along_gradient(&params, &grads, eta, Some(real_rows), forward)?)
        }
        None => None,
    };
    let dep = encoder_dependency(&model, batch.src.view(), batch.src_mask.view())?;
    Ok(Row {
        scheme,
        sublayers,
        seed,
        change: change.mean,
        per_delta: change.per_seed,
        gradient_change,
        beta_square_sum: dep.diagonal_square_sum(),
    })
}

fn write_table(ctx: &ExperimentCtx, rows: &[Row]) -> Result<()> {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.scheme.name().to_string(),
                r.sublayers.to_string(),
                r.seed.to_string(),
                r.change.to_string(),
                r.per_delta.iter().map(f64::to_string).collect::<Vec<_>>().join(" "),
                r.gradient_change.map_or(String::new(), |g| g.to_string()),
                r.beta_square_sum.to_string(),
            ]
        })
        .collect();
    ctx.dir.write_csv(
        "output_change.csv",
        &[
            "scheme",
            "sublayers",
            "seed",
            "output_change",
            "output_change_per_delta_seed",
            "gradient_sign_change",
            "beta_diag_square_sum",
        ],
        &table,
    )
}
