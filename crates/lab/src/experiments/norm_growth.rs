//! `norm-growth` (Merrill et al. 2021, §4–5, Fig. 1 and the LM figures; PAPERS.md §1.2, §6
//! target 9): a char LM on tiny-shakespeare trained with AdamW at a constant lr and no weight
//! decay under Post-LN, Pre-LN and branch-LN, plus plain SGD and AdamW with weight decay λ ≫ η.
//!
//! Every step records ‖θ_t‖ (all non-scalar parameters) and the update alignment
//! cos(θ_{t−1}, δ_t); a snapshot every 2.5 % of training gives the direction cosine
//! cos(θ_t, θ_{t+Δ}) with Δ = 5 % and the per-layer norms. After the first `monotone_from`
//! steps the norm is fitted by OLS against t, √t, t^¼ and exp(−t) (R²) and by the growth law
//! ρ^{1/p} = a + b·t (p = ½ for Adam, ¼ for SGD on a scale-invariant loss).
//!
//! Claims (AdamW with wd = 0, every scheme and seed): the norm rises at every snapshot after
//! `monotone_from`; R²(√t) ≥ 0.95 and > R²(t); the direction cosine over 5 % of training ends
//! ≥ 0.99 and above where it started; mean |cos(θ_{t−1}, δ_t)| < 0.1. With λ ≫ η the final norm
//! is below the initial one. SGD's growth exponent is closer to ¼ than to ½ (and not at an end
//! of the fitting grid, where it is not identified).
//!
//! The tracker sees the steps it is run for: after `--resume`, norms and alignments start at the
//! checkpoint, and the fits use what was observed.

use saturn_layers::ResidualScheme;
use saturn_optim::{OptimizerConfig, SgdConfig};
use saturn_saturation::{Fit, GrowthExponent, NormTracker, Regressor, fit_all, growth_exponent};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::char_lm::{LmData, adamw, constant_lr, lm_task, new_lm};
use super::data::CharCorpus;
use super::lm_baseline::ModelShape;
use crate::config::{Preset, resolve};
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::summary::Claims;
use crate::train::train;

/// The config of `norm-growth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormGrowthConfig {
    pub model: ModelShape,
    pub data: LmData,
    pub steps: usize,
    /// One AdamW (wd = 0, constant lr) run per scheme.
    pub schemes: Vec<ResidualScheme>,
    pub adamw_lr: f64,
    /// The scheme of the SGD and strong-weight-decay runs.
    pub control_scheme: ResidualScheme,
    /// Plain SGD (no momentum, no decay), constant lr.
    pub sgd_lr: f64,
    /// AdamW at `adamw_lr` with this decoupled weight decay (λ ≫ η).
    pub strong_weight_decay: f64,
    /// Snapshots kept over the run (every steps / snapshots steps); Δ = 5 % of training is
    /// snapshots / 20 snapshots.
    pub snapshots: usize,
    /// Growth is judged (monotonicity, fits, alignment) from this step on.
    pub monotone_from: usize,
}

impl NormGrowthConfig {
    /// quick: d = 64, 2 layers, 600 steps of 8 × 64 characters; full: the same model for 10,000
    /// steps of 16 × 64 (≈ 10 epochs, about 25 minutes on 2 cores). lr 1e-2 as the reference
    /// LMs.
    pub fn preset(preset: Preset) -> Self {
        let (d, layers, steps, batch, seq, from) = match preset {
            Preset::Quick => (64, 2, 600, 8, 64, 150),
            Preset::Full => (64, 2, 10_000, 16, 64, 500),
        };
        NormGrowthConfig {
            model: ModelShape {
                d_model: d,
                n_heads: 4,
                d_ff: 4 * d,
                n_layers: layers,
                act: saturn_layers::Activation::Relu,
                init: Default::default(),
            },
            data: LmData { batch_size: batch, seq_len: seq, eval_batches: 4 },
            steps,
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn, ResidualScheme::BranchLn],
            adamw_lr: 1e-2,
            control_scheme: ResidualScheme::PostLn,
            sgd_lr: 0.1,
            strong_weight_decay: 1.0,
            snapshots: 40,
            monotone_from: from,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.snapshots < 20
            || !self.steps.is_multiple_of(self.snapshots)
            || self.monotone_from >= self.steps
        {
            return Err(LabError::Config(format!(
                "norm-growth needs snapshots ≥ 20 dividing steps ({} / {}) and monotone_from < steps",
                self.steps, self.snapshots
            )));
        }
        Ok(())
    }
}

/// What kind of run, for the claims.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    AdamNoDecay,
    Sgd,
    StrongDecay,
}

/// What one run measured.
struct RunResult {
    label: String,
    kind: Kind,
    norms: Vec<(f64, f64)>,
    alignment: Vec<(f64, f64)>,
    direction: Vec<(f64, f64)>,
    fits: Vec<Fit>,
    exponent: GrowthExponent,
    monotone: bool,
    mean_abs_alignment: f64,
    initial_norm: f64,
    final_norm: f64,
    diverged_at_step: Option<usize>,
}

/// Trains every run and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(NormGrowthConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    cfg.validate()?;
    ctx.dir.write_toml("config.toml", &cfg)?;
    let corpus = CharCorpus::tiny_shakespeare()?;
    let every = cfg.steps / cfg.snapshots;
    let lag = cfg.snapshots / 20;
    let mut plan: Vec<(String, Kind, ResidualScheme, OptimizerConfig, f64)> = cfg
        .schemes
        .iter()
        .map(|&s| (format!("adamw-{}", s.name()), Kind::AdamNoDecay, s, adamw(0.0), cfg.adamw_lr))
        .collect();
    let control = cfg.control_scheme;
    plan.push((
        format!("sgd-{}", control.name()),
        Kind::Sgd,
        control,
        OptimizerConfig::Sgd(SgdConfig::default()),
        cfg.sgd_lr,
    ));
    plan.push((
        format!("adamw-wd{}-{}", cfg.strong_weight_decay, control.name()),
        Kind::StrongDecay,
        control,
        adamw(cfg.strong_weight_decay),
        cfg.adamw_lr,
    ));

    let mut results = Vec::new();
    let mut fit_rows = Vec::new();
    let mut dir_rows = Vec::new();
    let mut group_rows = Vec::new();
    for (name, kind, scheme, optimizer, lr) in &plan {
        for &seed in &ctx.seeds {
            let label = format!("{name}-seed{seed}");
            let model = new_lm(&cfg.model, *scheme, &corpus, cfg.data.seq_len, seed)?;
            let task = lm_task(&corpus, &cfg.data, seed);
            let train_cfg = constant_lr(cfg.steps, optimizer.clone(), *lr, 1);
            let mut tracker = NormTracker::new(every)?;
            let out = train(
                &model,
                &task,
                &train_cfg,
                &ctx.dir.sub(&label)?,
                ctx.resume,
                &label,
                &mut |step, m| {
                    let r = tracker.observe(step, m)?;
                    let mut row = vec![("norm".to_string(), r.total_norm)];
                    if let Some(a) = r.update_alignment {
                        row.push(("update_alignment".to_string(), a));
                    }
                    Ok(row)
                },
            )?;
            let records = tracker.records();
            let norms: Vec<(f64, f64)> =
                records.iter().map(|r| (r.step as f64, r.total_norm)).collect();
            let alignment: Vec<(f64, f64)> = records
                .iter()
                .filter_map(|r| r.update_alignment.map(|a| (r.step as f64, a)))
                .collect();
            let late: Vec<(f64, f64)> =
                norms.iter().copied().filter(|(t, _)| *t >= cfg.monotone_from as f64).collect();
            let (ts, ys): (Vec<f64>, Vec<f64>) = late.iter().copied().unzip();
            let fits = fit_all(&ts, &ys)?;
            let exponent = growth_exponent(&ts, &ys)?;
            let snaps: Vec<(usize, f64)> =
                tracker.checkpoints().iter().map(|(s, snap)| (*s, snap.total_norm())).collect();
            let judged: Vec<f64> =
                snaps.iter().filter(|(s, _)| *s >= cfg.monotone_from).map(|x| x.1).collect();
            let monotone = judged.len() >= 2 && judged.windows(2).all(|w| w[1] > w[0]);
            let late_align: Vec<f64> = alignment
                .iter()
                .filter(|(t, _)| *t > cfg.monotone_from as f64)
                .map(|x| x.1.abs())
                .collect();
            let mean_abs_alignment =
                late_align.iter().sum::<f64>() / late_align.len().max(1) as f64;
            let direction: Vec<(f64, f64)> =
                tracker.direction_cosines(lag)?.into_iter().map(|(s, c)| (s as f64, c)).collect();
            for f in &fits {
                fit_rows.push(vec![
                    label.clone(),
                    f.regressor.name().into(),
                    f.intercept.to_string(),
                    f.slope.to_string(),
                    f.r2.to_string(),
                ]);
            }
            fit_rows.push(vec![
                label.clone(),
                format!("growth_exponent={}", exponent.exponent),
                String::new(),
                String::new(),
                exponent.r2.to_string(),
            ]);
            for (s, c) in &direction {
                dir_rows.push(vec![label.clone(), "total".into(), s.to_string(), c.to_string()]);
            }
            for (s, g, c) in tracker.group_direction_cosines(lag)? {
                dir_rows.push(vec![label.clone(), g, s.to_string(), c.to_string()]);
            }
            for (s, snap) in tracker.checkpoints() {
                for (g, n) in snap.group_norms() {
                    group_rows.push(vec![label.clone(), s.to_string(), g, n.to_string()]);
                }
            }
            results.push(RunResult {
                label,
                kind: *kind,
                initial_norm: norms.first().map_or(f64::NAN, |x| x.1),
                final_norm: norms.last().map_or(f64::NAN, |x| x.1),
                norms,
                alignment,
                direction,
                fits,
                exponent,
                monotone,
                mean_abs_alignment,
                diverged_at_step: out.diverged_at_step,
            });
        }
    }
    ctx.dir.write_csv("fits.csv", &["run", "regressor", "intercept", "slope", "r2"], &fit_rows)?;
    ctx.dir.write_csv("direction_cosines.csv", &["run", "group", "step", "cosine"], &dir_rows)?;
    ctx.dir.write_csv("group_norms.csv", &["run", "step", "group", "norm"], &group_rows)?;
    figures(ctx, &cfg, &results)?;
    Ok(claims(&cfg, &results))
}

fn figures(ctx: &ExperimentCtx, cfg: &NormGrowthConfig, results: &[RunResult]) -> Result<()> {
    let chart =
        |title, y_label| Chart { title, x_label: "step", y_label, log_x: false, log_y: false };
    let norms: Vec<Series> =
        results.iter().map(|r| Series::new(r.label.clone(), r.norms.clone())).collect();
    line_chart(&ctx.dir, "norm", &chart("norm-growth: parameter norm", "‖θ_t‖₂"), &norms)?;
    let mut fits = Vec::new();
    for r in results.iter().filter(|r| r.kind == Kind::AdamNoDecay) {
        let late: Vec<(f64, f64)> =
            r.norms.iter().copied().filter(|(t, _)| *t >= cfg.monotone_from as f64).collect();
        let t_max = late.last().map_or(1.0, |x| x.0);
        fits.push(Series::new(r.label.clone(), late.clone()));
        if let Some(f) = r.fits.iter().find(|f| f.regressor == Regressor::Sqrt) {
            let pts = late
                .iter()
                .map(|(t, _)| (*t, f.intercept + f.slope * (t / t_max).sqrt()))
                .collect();
            fits.push(Series::new(format!("{} √t fit (R² {:.4})", r.label, f.r2), pts));
        }
    }
    line_chart(
        &ctx.dir,
        "norm_sqrt_fit",
        &chart("norm-growth: AdamW norms and √t fits", "‖θ_t‖₂"),
        &fits,
    )?;
    let dirs: Vec<Series> =
        results.iter().map(|r| Series::new(r.label.clone(), r.direction.clone())).collect();
    line_chart(
        &ctx.dir,
        "direction_cosine",
        &chart("norm-growth: cos(θ_t, θ_t+Δ), Δ = 5 % of training", "cosine"),
        &dirs,
    )?;
    // the alignment, averaged over windows of 1 % of training for readability
    let w = (cfg.steps / 100).max(1);
    let aligns: Vec<Series> = results
        .iter()
        .map(|r| {
            let pts = r
                .alignment
                .chunks(w)
                .map(|c| (c[c.len() - 1].0, c.iter().map(|x| x.1).sum::<f64>() / c.len() as f64))
                .collect();
            Series::new(r.label.clone(), pts)
        })
        .collect();
    line_chart(
        &ctx.dir,
        "update_alignment",
        &chart("norm-growth: cos(θ_t−1, δ_t), mean over 1 % windows", "cosine"),
        &aligns,
    )
}

fn claims(cfg: &NormGrowthConfig, results: &[RunResult]) -> Claims {
    let adam: Vec<&RunResult> = results.iter().filter(|r| r.kind == Kind::AdamNoDecay).collect();
    let map = |f: &dyn Fn(&RunResult) -> serde_json::Value, rs: &[&RunResult]| {
        serde_json::Value::Object(rs.iter().map(|r| (r.label.clone(), f(r))).collect())
    };
    let r2 = |r: &RunResult, g: Regressor| {
        r.fits.iter().find(|f| f.regressor == g).map_or(f64::NAN, |f| f.r2)
    };
    let mut claims = Claims::default();
    let trained = adam.iter().all(|r| r.diverged_at_step.is_none());
    claims.add(
        "norm-rises-monotonically",
        "With AdamW, wd = 0 and a constant lr, the parameter norm rises monotonically after the first steps, under Post-LN, Pre-LN and branch-LN",
        "Merrill et al. 2021, §5 and LM figures; PAPERS.md §6 target 9",
        &format!("every AdamW (wd = 0) run: ‖θ‖ at each snapshot (every 2.5 % of training) from step {} on exceeds the one before", cfg.monotone_from),
        [
            ("monotone", map(&|r| json!(r.monotone), &adam)),
            ("initial_norm", map(&|r| json!(r.initial_norm), &adam)),
            ("final_norm", map(&|r| json!(r.final_norm), &adam)),
            ("diverged_at_step", map(&|r| json!(r.diverged_at_step), &adam)),
        ],
        trained && adam.iter().all(|r| r.monotone),
    );
    claims.add(
        "norm-grows-as-sqrt-t",
        "The norm grows like √t: an OLS fit on √t has R² ≥ 0.95 and beats the linear fit",
        "Merrill et al. 2021, Fig. 1 (T5: r² ≈ 1.00); t5_norm_regression.py; PAPERS.md §6 target 9",
        &format!(
            "every AdamW (wd = 0) run, steps ≥ {}: R²(√t) ≥ 0.95 and R²(√t) > R²(t)",
            cfg.monotone_from
        ),
        [
            ("r2_sqrt_t", map(&|r| json!(r2(r, Regressor::Sqrt)), &adam)),
            ("r2_t", map(&|r| json!(r2(r, Regressor::Linear)), &adam)),
            ("r2_t_quarter", map(&|r| json!(r2(r, Regressor::QuarterRoot)), &adam)),
            ("r2_exp_decay", map(&|r| json!(r2(r, Regressor::ExpDecay)), &adam)),
            ("growth_exponent", map(&|r| json!(r.exponent.exponent), &adam)),
        ],
        trained
            && adam.iter().all(|r| {
                r2(r, Regressor::Sqrt) >= 0.95 && r2(r, Regressor::Sqrt) > r2(r, Regressor::Linear)
            }),
    );
    let first = |r: &RunResult| r.direction.first().map_or(f64::NAN, |x| x.1);
    let last = |r: &RunResult| r.direction.last().map_or(f64::NAN, |x| x.1);
    claims.add(
        "direction-converges",
        "The direction θ/‖θ‖ converges: the cosine between checkpoints 5 % of training apart rises to ≥ 0.99 late in training",
        "Merrill et al. 2021, §5 (T5 cos(θ_t, θ_t+1) → 1); PAPERS.md §6 target 9",
        "every AdamW (wd = 0) run: cos(θ_t, θ_t+Δ) for the last pair (t = 95 % of training) ≥ 0.99 and above the first pair's",
        [("first", map(&|r| json!(first(r)), &adam)), ("last", map(&|r| json!(last(r)), &adam))],
        trained && adam.iter().all(|r| last(r) >= 0.99 && last(r) > first(r)),
    );
    claims.add(
        "updates-are-orthogonal",
        "Updates are nearly orthogonal to the parameters: |cos(θ_t−1, δ_t)| < 0.1",
        "Merrill et al. 2021, §4 (scale invariance ⇒ ⟨θ, ∇L⟩ ≈ 0); PAPERS.md §1.2, §6 target 9",
        &format!("every AdamW (wd = 0) run: mean over steps > {} of |cos(θ_t−1, δ_t)| (one optimizer step) < 0.1", cfg.monotone_from),
        [("mean_abs_alignment", map(&|r| json!(r.mean_abs_alignment), &adam))],
        trained && adam.iter().all(|r| r.mean_abs_alignment < 0.1),
    );
    let decay: Vec<&RunResult> = results.iter().filter(|r| r.kind == Kind::StrongDecay).collect();
    claims.add(
        "weight-decay-shrinks-the-norm",
        "With weight decay λ ≫ η the norm falls instead of growing",
        "Merrill et al. 2021, appendix (lr × wd grid); PAPERS.md §1.2, §6 target 9",
        &format!(
            "AdamW with λ = {} ≫ η = {}: final norm < initial norm (every seed)",
            cfg.strong_weight_decay, cfg.adamw_lr
        ),
        [
            ("initial_norm", map(&|r| json!(r.initial_norm), &decay)),
            ("final_norm", map(&|r| json!(r.final_norm), &decay)),
        ],
        !decay.is_empty() && decay.iter().all(|r| r.final_norm < r.initial_norm),
    );
    let sgd: Vec<&RunResult> = results.iter().filter(|r| r.kind == Kind::Sgd).collect();
    let p = |r: &RunResult| r.exponent.exponent;
    claims.add(
        "sgd-grows-as-t-quarter",
        "Plain SGD grows the norm more slowly, as t^¼ for a scale-invariant loss (‖θ‖⁴ ∝ t)",
        "Merrill et al. 2021, §4; PAPERS.md §1.2",
        &format!("SGD (lr {}): the norm grows (final > initial) and the fitted exponent p of ρ^(1/p) = a + b·t (steps ≥ {}) is inside the grid [0.05, 2] and closer to ¼ than to ½ (p < 0.375)", cfg.sgd_lr, cfg.monotone_from),
        [
            ("growth_exponent", map(&|r| json!(p(r)), &sgd)),
            ("growth_exponent_r2", map(&|r| json!(r.exponent.r2), &sgd)),
            ("growth_exponent_on_grid_edge", map(&|r| json!(r.exponent.on_grid_edge), &sgd)),
            ("adamw_growth_exponent", map(&|r| json!(p(r)), &adam)),
            ("initial_norm", map(&|r| json!(r.initial_norm), &sgd)),
            ("final_norm", map(&|r| json!(r.final_norm), &sgd)),
        ],
        !sgd.is_empty()
            && sgd.iter().all(|r| {
                r.final_norm > r.initial_norm && !r.exponent.on_grid_edge && (p(r) - 0.25).abs() < (p(r) - 0.5).abs()
            }),
    );
    claims
}
