//! `amplification` (Liu et al. 2020, §4.1, Theorem 2 and Fig. 4; README `output_change.png`;
//! PAPERS.md §2.3, §6 target 1): perturb every weight matrix of an encoder by η·sign(N(0, 1))
//! and measure the change of its output, ‖F(x, W) − F(x, W + δ)‖² summed over the real tokens of
//! one fixed batch, in eval mode, averaged over δ seeds, for N sublayers and each residual
//! scheme at init (Admin with ω profiled on the same batch).
//!
//! Claims: Post-LN's change is linear in N (R² > 0.95); Pre-LN's and Admin's grow sublinearly
//! (the change per added sublayer shrinks along the N grid, and the total growth is below
//! proportional); the Post-LN / Pre-LN ratio increases with N. Also recorded: the change for
//! δ = −η_g·sign(∇L) (the reference's `--gradient_as_delta`) and Σ_i β²_{i,i}, which Theorem 2
//! makes the change proportional to.

use saturn_dynamics::{
    encoder_dependency, linear_fit, output_change, output_change_along_gradient,
};
use saturn_layers::{ForwardCtx, Module, ResidualScheme, Seq2Seq};
use saturn_tensor::{Tensor, grad};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::schemes::{label, mean};
use super::translation::{Seq2SeqShape, SeqBatch, TranslationData, init_admin};
use crate::config::{Preset, resolve};
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::summary::Claims;
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
}

impl AmplificationConfig {
    /// quick: d = 64, N up to 24, 32 pairs (≈ 10 s); full: d = 128, N up to 48, 128 pairs
    /// (≈ 10 min; the gradient-sign pass holds a 48-sublayer f64 graph, several GB). Models are
    /// f64, so η = 1e-4 and 1e-6 moves are far above round-off.
    pub fn preset(preset: Preset) -> Self {
        let (d, pairs, sublayers) = match preset {
            Preset::Quick => (64, 32, vec![6, 12, 24]),
            Preset::Full => (128, 128, vec![6, 12, 24, 48]),
        };
        AmplificationConfig {
            model: Seq2SeqShape::of_width(d),
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn, ResidualScheme::Admin],
            sublayers,
            eta: 1e-4,
            delta_seeds: 5,
            gradient_eta: Some(1e-6),
            batch_pairs: pairs,
            vocab: 2000,
            max_len: 64,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.sublayers.len() < 3
            || self.sublayers.iter().any(|&n| n == 0 || n % 2 == 1)
            || self.sublayers.windows(2).any(|w| w[1] <= w[0])
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
        Ok(())
    }
}

/// One model's measurements.
struct Row {
    scheme: ResidualScheme,
    sublayers: usize,
    seed: u64,
    change: f64,
    per_delta: Vec<f64>,
    gradient_change: Option<f64>,
    beta_square_sum: f64,
}

/// Measures every scheme × depth × seed and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(AmplificationConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    cfg.validate()?;
    ctx.dir.write_toml("config.toml", &cfg)?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let batch = data
        .valid_batches(cfg.batch_pairs, cfg.batch_pairs)?
        .into_iter()
        .next()
        .ok_or_else(|| LabError::Run("no validation pairs".into()))?;
    let real_rows: Vec<bool> = batch.src_mask.iter().copied().collect();
    let mut rows = Vec::new();
    for &scheme in &cfg.schemes {
        for &n in &cfg.sublayers {
            for &seed in &ctx.seeds {
                rows.push(measure(&cfg, &data, &batch, &real_rows, scheme, n, seed)?);
            }
        }
    }
    write_table(ctx, &rows)?;

    // the seed-averaged curve of each scheme
    let curve = |scheme: ResidualScheme, f: &dyn Fn(&Row) -> f64| -> Vec<f64> {
        cfg.sublayers
            .iter()
            .map(|&n| {
                let v: Vec<f64> =
                    rows.iter().filter(|r| r.scheme == scheme && r.sublayers == n).map(f).collect();
                mean(&v)
            })
            .collect()
    };
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
        &Chart {
            title: "amplification: encoder output change under W + η·sign(N(0,1))",
            x_label: "encoder sublayers N",
            y_label: "‖F(x,W) − F(x,W+δ)‖² (sum over tokens)",
            log_x: false,
            log_y: false,
        },
        &series(&|r| r.change),
    )?;
    line_chart(
        &ctx.dir,
        "beta_square_sum",
        &Chart {
            title: "amplification: Σ_i β²_ii (Theorem 2's predictor)",
            x_label: "encoder sublayers N",
            y_label: "Σ_i β_ii²",
            log_x: false,
            log_y: false,
        },
        &series(&|r| r.beta_square_sum),
    )?;

    let mut claims = Claims::default();
    let has = |s| cfg.schemes.contains(&s);
    let (post, pre, admin) = (
        curve(ResidualScheme::PostLn, &|r| r.change),
        curve(ResidualScheme::PreLn, &|r| r.change),
        curve(ResidualScheme::Admin, &|r| r.change),
    );
    let grid = json!(cfg.sublayers);
    if has(ResidualScheme::PostLn) {
        let fit = linear_fit(&ns, &post)?;
        claims.add(
            "post-ln-linear",
            "Post-LN's output change grows linearly with the number of sublayers N",
            "Liu et al. 2020, Theorem 2 (Post-LN: O(N)) and README output_change.png; PAPERS.md §6 target 1",
            "R² of the least-squares line through (N, mean change) > 0.95",
            [
                ("sublayers", grid.clone()),
                ("post_ln_change", json!(post)),
                ("slope", json!(fit.slope)),
                ("intercept", json!(fit.intercept)),
                ("r2", json!(fit.r2)),
                ("post_max_over_min", json!(post.last().copied().unwrap_or(f64::NAN) / post[0])),
            ],
            fit.r2 > 0.95,
        );
    }
    let sublinear = |c: &[f64]| {
        let slopes: Vec<f64> = c
            .windows(2)
            .zip(cfg.sublayers.windows(2))
            .map(|(v, n)| (v[1] - v[0]) / (n[1] - n[0]) as f64)
            .collect();
        let shrinking = slopes.windows(2).all(|s| s[1] < s[0]);
        let growth = c[c.len() - 1] / c[0];
        let proportional = ns[ns.len() - 1] / ns[0];
        (slopes, growth, shrinking && growth < proportional)
    };
    if has(ResidualScheme::PreLn) && has(ResidualScheme::Admin) {
        let (pre_slopes, pre_growth, pre_ok) = sublinear(&pre);
        let (admin_slopes, admin_growth, admin_ok) = sublinear(&admin);
        claims.add(
            "pre-ln-admin-sublinear",
            "Pre-LN's and Admin's output change grow sublinearly in N",
            "Liu et al. 2020, Theorem 2 (Pre-LN and Admin at init: O(log N)); PAPERS.md §6 target 1",
            "for both: the change per added sublayer shrinks between successive N, and change(N_max)/change(N_min) < N_max/N_min",
            [
                ("sublayers", grid.clone()),
                ("pre_ln_change", json!(pre)),
                ("admin_change", json!(admin)),
                ("pre_ln_change_per_sublayer", json!(pre_slopes)),
                ("admin_change_per_sublayer", json!(admin_slopes)),
                ("pre_ln_growth", json!(pre_growth)),
                ("admin_growth", json!(admin_growth)),
                ("proportional_growth", json!(ns[ns.len() - 1] / ns[0])),
            ],
            pre_ok && admin_ok,
        );
    }
    if has(ResidualScheme::PostLn) && has(ResidualScheme::PreLn) {
        let ratio: Vec<f64> = post.iter().zip(&pre).map(|(a, b)| a / b).collect();
        claims.add(
            "post-pre-ratio-increases",
            "The Post-LN / Pre-LN output-change ratio increases with N",
            "Liu et al. 2020, Fig. 4 / README output_change.png; PAPERS.md §6 target 1",
            "the ratio strictly increases at every step of the N grid",
            [("sublayers", grid), ("post_over_pre", json!(ratio))],
            ratio.windows(2).all(|w| w[1] > w[0]),
        );
    }
    Ok(claims)
}

/// One scheme × depth × seed: the random-sign change (mean over δ seeds), the gradient-sign
/// change and Σβ²_ii, on an f64 model.
fn measure(
    cfg: &AmplificationConfig,
    data: &TranslationData,
    batch: &SeqBatch,
    real_rows: &[bool],
    scheme: ResidualScheme,
    sublayers: usize,
    seed: u64,
) -> Result<Row> {
    let model = Seq2Seq::<f64>::new(cfg.model.config(scheme, sublayers / 2, 1, data), seed)?;
    init_admin(&model, batch)?;
    let params = model.named_parameters();
    let forward = || {
        model.encode(batch.src.view(), batch.src_mask.view(), &mut ForwardCtx::eval()).map(|e| e.1)
    };
    let delta_seeds: Vec<u64> =
        (0..cfg.delta_seeds as u64).map(|k| derive_seed(seed, 21, k)).collect();
    let change = output_change(&params, cfg.eta, &delta_seeds, Some(real_rows), forward)?;
    let gradient_change = match cfg.gradient_eta {
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
