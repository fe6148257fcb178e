//! `hessian` (the student reproduction of Xiong et al. 2020 in docs/REFERENCES.md#hessian, method
//! from PyHessian, Yao et al. 2020; docs/REFERENCES.md#target-8): the loss Hessian of
//! encoder–decoders at Xavier init on Multi30k validation pairs (the shipped corpus without the
//! data directory), Post-LN vs Pre-LN, with exact Hessian-vector products (double backward), in
//! eval mode:
//!
//! - the top eigenvalue λ_max by power iteration (PyHessian's tol 10⁻³). At init the Hessian
//!   is indefinite and its largest-|λ| eigenvalue (what PyHessian's power iteration returns) can
//!   be negative; power iteration is then repeated on H − λ_d·I to reach the top of the
//!   spectrum (`largest_eigenpair`). Both are recorded, with the largest Ritz value of the SLQ
//!   runs as a cross-check. The SLQ runs come first, and with `warm_start` both power
//!   iterations start from the first run's extreme Ritz vectors (`largest_eigenpair_from`):
//!   at the full preset they converge in 2–4 products where random starts did not in 100;
//! - the trace by Hutchinson's estimator with Rademacher probes (fixed count, standard error),
//!   reported only: at init the Hessian is indefinite, so the trace is net curvature;
//! - the spectral density by stochastic Lanczos quadrature (full re-orthogonalization,
//!   LAPACK on the tridiagonal), and from it Σ|λ| = tr|H| = n · Σ_j τ_j |θ_j|; the figure
//!   smooths it with a Gaussian kernel on one grid for every model (`density`), Post-LN against
//!   Pre-LN, mean over seeds with the seeds' min and max;
//! - the scale trend (`scale`, cells `scale-d{d}-…`): λ_max alone, at the widths d of
//!   `scale.widths`, on fewer pairs, by power iteration from a short Lanczos run's Ritz vectors.
//!
//! The loss is the token-weighted mean cross-entropy over all pairs, computed in micro-batches.
//!
//! Every seed of the run is measured (3 at quick, 5 at full: the runner's seed plan for
//! init-time experiments); the Post-LN and Pre-LN models of a seed share the init seed and the
//! estimators' probe seeds. Claims, each on one paired value per seed, judged by the 95 % t
//! interval of their mean against 0 (the source states a direction only: `DIRECTION`):
//!
//! - `post-ln-larger-top-eigenvalue`: ln(λ_max(Post-LN) / λ_max(Pre-LN)) > 0 (undefined, so
//!   inconclusive, unless both are positive);
//! - `post-ln-larger-total-curvature`: ln(tr|H|(Post-LN) / tr|H|(Pre-LN)) > 0, tr|H| by SLQ
//!   (replaces issue 11's `post-ln-larger-trace`, which no source claims);
//! - `post-ln-wider-spectrum`: ln(width(Post-LN) / width(Pre-LN)) > 0, the width being the
//!   largest minus the smallest Ritz value of the SLQ runs;
//! - `post-ln-larger-top-eigenvalue-at-width`: the first claim at the widest scale width, with
//!   the per-seed slope of the log-ratio against ln d (the trend) beside it.
//!
//! Nothing is trained, so there is no learning gate. The arms compared are a config field
//! (`arms`, Post-LN and Pre-LN by default): with them swapped, or with Post-LN compared with
//! itself, the claims must come out `fails` (tests/integration/sabotage_xiong.rs), so the direction is
//! measured, not built in.

use std::cell::{Cell, RefCell};

mod density;

use saturn_dynamics::hessian::{
    DensityConfig, Hessian, Krylov, LinearOperator, PowerIteration, Quadrature, WarmStart,
    hutchinson_trace, largest_eigenpair, largest_eigenpair_from,
};
use saturn_layers::{ForwardCtx, Module, ResidualScheme, Seq2Seq};
use saturn_tensor::Tensor;
use saturn_tensor::io::{read_safetensors, write_safetensors};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells;
use crate::claim::{Claim, ClaimBuilder, Evidence, Rule, Threshold, short};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::summary::Claims;
use crate::tasks::aggregate::mean;
use crate::tasks::scale::{ScaleTrend, scale_chart};
use crate::tasks::scheme_label::label;
use crate::tasks::translation::Seq2SeqShape;
use crate::tasks::translation_data::{PairSource, SeqBatch, TranslationData};
use crate::train::derive_seed;

/// The config of `hessian`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HessianConfig {
    pub model: Seq2SeqShape,
    /// Encoder and decoder layers.
    pub layers: usize,
    /// The schemes measured (each seed of the run: 3 at quick, 5 at full, the runner's seed
    /// plan).
    pub schemes: Vec<ResidualScheme>,
    /// The arm claimed to have the sharper Hessian and the arm it is compared with: Post-LN
    /// and Pre-LN, the paper's comparison. The claims are made when both are in `schemes`, and
    /// name the arms they compare. Swapping them, or comparing a scheme with itself, must turn
    /// the claims into `fails` (the sabotage tests do): the direction is measured, not built in.
    #[serde(default = "paper_arms")]
    pub arms: [ResidualScheme; 2],
    /// The first this many validation pairs define the loss.
    pub pairs: usize,
    /// Pairs per micro-batch.
    pub batch_size: usize,
    /// Keep each micro-batch's first-order gradient graph (faster, more memory).
    pub cache_graphs: bool,
    /// Start the power iterations from the first Lanczos run's extreme Ritz vectors instead of
    /// random vectors (the same eigenvalues, in far fewer products; see `largest_eigenpair_from`).
    pub warm_start: bool,
    pub power_iterations: usize,
    pub power_tol: f64,
    /// Hutchinson probes of the reported trace (a fixed count; PyHessian stops at ≤ 100 once the
    /// running mean changes by < 10⁻³). The full preset takes 20: the trace carries no claim
    /// (at init it is net curvature), its standard error is reported beside it, and each probe
    /// is a full product (≈ 30 s at full), so 100 probes were ≈ 40 % of a main cell.
    pub trace_probes: usize,
    pub lanczos_steps: usize,
    pub lanczos_runs: usize,
    /// PyHessian's smoothing settings. Unused since the density figure moved to one common grid
    /// and a wider kernel (`density`); kept because the main cells' key holds it.
    pub density: DensityConfig,
    pub vocab: usize,
    pub max_len: usize,
    /// The λ_max scale trend: more cells, at other widths (none when `widths` is empty). Not
    /// part of the main cells' key: adding it left the full preset's cells valid.
    #[serde(default, skip_serializing_if = "LambdaScale::is_off")]
    pub scale: LambdaScale,
}

/// The λ_max scale trend (issue 22, "Scale"): λ_max of each arm at init at several widths d,
/// on a smaller measurement than the main cells' (fewer pairs: a product at d = 256 costs
/// ≈ 16× one at d = 64), by power iteration warm-started from a short Lanczos run — the main
/// cells' method without the SLQ density and the trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaScale {
    /// The widths d (the shape's d_ff and heads scaled as `model`'s); empty: no scale cells.
    pub widths: Vec<usize>,
    /// Encoder and decoder layers.
    pub layers: usize,
    /// The first this many validation pairs define the loss.
    pub pairs: usize,
    pub batch_size: usize,
    /// The first this many of the run's seeds are measured at every width.
    pub seeds: usize,
    /// Lanczos steps whose extreme Ritz vectors start the power iterations (30 at full: the
    /// extreme Ritz values of a Lanczos run converge long before power iteration would, and
    /// the power iteration then only confirms the pair; 10 steps left it unconverged after 15
    /// iterations at the quick preset).
    pub warm_steps: usize,
    /// The power iterations' limit (5 at full: a d = 256 product costs ≈ 20 core-s at 6-6
    /// layers and 100 pairs, measured; `top_converged` records whether the tolerance was met).
    pub power_iterations: usize,
}

impl LambdaScale {
    /// No scale cells.
    pub fn is_off(&self) -> bool {
        self.widths.is_empty()
    }
}

/// What a scale cell was measured with, kept in its output: a scale cell made under other
/// settings is refused at the merge (the cells' key leaves the scale out, see `cell_key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScaleCell {
    d_model: usize,
    layers: usize,
    pairs: usize,
    batch_size: usize,
    warm_steps: usize,
    power_iterations: usize,
    power_tol: f64,
}

impl ScaleCell {
    fn of(cfg: &HessianConfig, d_model: usize) -> Self {
        let s = &cfg.scale;
        ScaleCell {
            d_model,
            layers: s.layers,
            pairs: s.pairs,
            batch_size: s.batch_size,
            warm_steps: s.warm_steps,
            power_iterations: s.power_iterations,
            power_tol: cfg.power_tol,
        }
    }
}

impl ExperimentConfig for HessianConfig {
    /// quick: 2-2 layers, d = 32, 32 pairs (64 before the quick preset ran 3 seeds: halved
    /// to keep it near its old wall time), few products (an exact Hessian-vector product costs
    /// about a quarter of a second here); full: the reproduction's 6-6 layers on 1,000 pairs, d = 64,
    /// PyHessian's 100 Lanczos steps and iteration limits (about an hour per scheme and seed on
    /// one core). The seeds are the runner's: 3 at quick, 5 at full.
    fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Quick => HessianConfig {
                model: Seq2SeqShape::of_width(32),
                layers: 2,
                schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn],
                arms: paper_arms(),
                pairs: 32,
                batch_size: 32,
                cache_graphs: true,
                warm_start: true,
                power_iterations: 15,
                power_tol: 1e-3,
                trace_probes: 10,
                lanczos_steps: 15,
                lanczos_runs: 1,
                density: DensityConfig::default(),
                vocab: 2000,
                max_len: 64,
                scale: LambdaScale {
                    widths: vec![16, 32, 64],
                    layers: 2,
                    pairs: 16,
                    batch_size: 16,
                    seeds: 3,
                    warm_steps: 15,
                    power_iterations: 5,
                },
            },
            Preset::Full => HessianConfig {
                model: Seq2SeqShape::of_width(64),
                layers: 6,
                schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn],
                arms: paper_arms(),
                pairs: 1000,
                batch_size: 100,
                cache_graphs: false,
                warm_start: true,
                power_iterations: 100,
                power_tol: 1e-3,
                trace_probes: 20,
                lanczos_steps: 100,
                lanczos_runs: 1,
                density: DensityConfig::default(),
                vocab: 2000,
                max_len: 64,
                scale: LambdaScale {
                    widths: vec![64, 128, 256],
                    layers: 6,
                    pairs: 50,
                    batch_size: 50,
                    seeds: 5,
                    warm_steps: 30,
                    power_iterations: 5,
                },
            },
        }
    }

    fn validate(&self) -> Result<()> {
        if self.pairs == 0
            || self.batch_size == 0
            || self.power_iterations == 0
            || self.trace_probes == 0
            || self.lanczos_steps == 0
            || self.lanczos_runs == 0
        {
            return Err(LabError::Config(
                "pairs, batch sizes and iteration counts must be positive".into(),
            ));
        }
        let s = &self.scale;
        if !s.is_off()
            && (s.layers == 0
                || s.pairs == 0
                || s.batch_size == 0
                || s.seeds == 0
                || s.warm_steps == 0
                || s.power_iterations == 0
                || s.widths.iter().any(|&d| d == 0 || d % self.model.n_heads != 0))
        {
            return Err(LabError::Config(
                "scale: layers, pairs, batch size, seeds and iteration counts must be positive, \
                 and every width a multiple of the heads"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn paper_arms() -> [ResidualScheme; 2] {
    [ResidualScheme::PostLn, ResidualScheme::PreLn]
}

/// What is measured on one model: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spectrum {
    scheme: ResidualScheme,
    seed: u64,
    parameters: usize,
    /// λ_max by power iteration (with the shift when needed).
    top: f64,
    /// The largest-|λ| eigenvalue (PyHessian's "top eigenvalue").
    dominant: f64,
    top_iterations: usize,
    top_converged: bool,
    trace: f64,
    trace_std_error: f64,
    runs: Vec<Quadrature>,
    width: f64,
    products: usize,
    /// A scale cell's settings (absent in the main cells: their records from before the scale
    /// cells merge unchanged). A scale cell has no SLQ runs, and NaN trace and width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<ScaleCell>,
}

/// One model's measurement as far as it got, written to its cell's `measurement.json` after
/// each phase (SLQ, power iteration, trace): a full-preset phase is an hour of products, and
/// `--resume` continues the cell from the last finished one. The Ritz start vectors go beside
/// it as `ritz.safetensors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Measurement {
    /// The config it was measured with, `schemes` emptied (a model's measurement does not
    /// depend on which other schemes run).
    config: HessianConfig,
    parameters: usize,
    runs: Option<Vec<Quadrature>>,
    power: Option<PowerResult>,
    trace: Option<TraceResult>,
    /// Hessian-vector products spent so far, over every resumed process.
    products: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PowerResult {
    top: f64,
    dominant: f64,
    iterations: usize,
    converged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TraceResult {
    mean: f64,
    std_error: f64,
}

/// The file of a cell's measurement, saved after each phase.
const MEASUREMENT_FILE: &str = "measurement.json";

/// Measures the model of `cell` (SLQ, then λ_max, then the trace), saving each phase in the
/// cell's directory `dir` and, with `resume`, continuing from the phases saved there.
#[allow(clippy::too_many_arguments)]
fn measure<F>(
    cfg: &HessianConfig,
    (name, scheme, seed): (&str, ResidualScheme, u64),
    dir: &RunDir,
    resume: bool,
    params: Vec<Tensor<f32>>,
    weights: &[f64],
    loss: F,
) -> Result<Spectrum>
where
    F: Fn(usize) -> std::result::Result<Tensor<f32>, saturn_layers::LayerError>,
{
    let key = cell_key(cfg);
    let saved = if resume { load_measurement(dir, &key)? } else { None };
    let mut m = saved.unwrap_or_else(|| Measurement {
        config: key,
        parameters: params.iter().map(Tensor::len).sum(),
        runs: None,
        power: None,
        trace: None,
        products: 0,
    });
    if m.runs.is_none() || m.power.is_none() || m.trace.is_none() {
        let h = if cfg.cache_graphs {
            Hessian::cached(params, weights.to_vec(), loss)?
        } else {
            Hessian::new(params, weights.to_vec(), loss)?
        };
        let ritz_file = dir.file("ritz.safetensors");
        let save = |m: &Measurement| dir.write_json(MEASUREMENT_FILE, m);
        if m.runs.is_none() {
            let op =
                Reported::new(&h, &format!("{name} Lanczos"), cfg.lanczos_runs * cfg.lanczos_steps);
            let mut runs = Vec::with_capacity(cfg.lanczos_runs);
            for r in 0..cfg.lanczos_runs {
                // the seeds of `slq`
                let start = derive_seed(seed, 43, 0).wrapping_add(r as u64);
                let krylov = Krylov::run(&op, cfg.lanczos_steps, start)?;
                if r == 0 && cfg.warm_start {
                    let ritz = krylov.extreme_ritz_vectors()?;
                    let n = ritz.largest.1.len();
                    let tensors = [
                        ("dominant".to_string(), Tensor::from_vec(ritz.dominant.1, &[n])?),
                        ("largest".to_string(), Tensor::from_vec(ritz.largest.1, &[n])?),
                    ];
                    write_safetensors::<f64>(&ritz_file, &tensors, &Default::default())?;
                }
                runs.push(krylov.tridiagonal.quadrature()?);
            }
            m.runs = Some(runs);
            m.products += op.finish();
            save(&m)?;
        }
        if m.power.is_none() {
            let power = PowerIteration {
                top_k: 1,
                max_iter: cfg.power_iterations,
                tol: cfg.power_tol,
                seed: derive_seed(seed, 41, 0),
            };
            let op = Reported::new(&h, &format!("{name} power"), 2 * cfg.power_iterations);
            let top = if cfg.warm_start {
                let file = read_safetensors(&ritz_file)?;
                let vector = |key: &str| {
                    file.get::<f64>(key).map(|a| a.into_iter().collect::<Vec<_>>()).ok_or_else(
                        || LabError::Run(format!("{}: no tensor `{key}`", ritz_file.display())),
                    )
                };
                let (dominant, largest) = (vector("dominant")?, vector("largest")?);
                largest_eigenpair_from(
                    &op,
                    &power,
                    WarmStart { dominant: &dominant, largest: &largest },
                )?
            } else {
                largest_eigenpair(&op, &power)?
            };
            m.power = Some(PowerResult {
                top: top.largest.value,
                dominant: top.dominant.value,
                iterations: top.largest.iterations,
                converged: top.largest.converged && top.dominant.converged,
            });
            m.products += op.finish();
            save(&m)?;
        }
        if m.trace.is_none() {
            let op = Reported::new(&h, &format!("{name} trace"), cfg.trace_probes);
            let trace = hutchinson_trace(&op, cfg.trace_probes, derive_seed(seed, 42, 0))?;
            m.trace = Some(TraceResult { mean: trace.mean, std_error: trace.std_error });
            m.products += op.finish();
            save(&m)?;
        }
    }
    let (Some(runs), Some(power), Some(trace)) = (m.runs, m.power, m.trace) else {
        unreachable!("every phase is measured above");
    };
    let width =
        mean(&runs.iter().map(|q| q.nodes[q.nodes.len() - 1] - q.nodes[0]).collect::<Vec<_>>());
    Ok(Spectrum {
        scheme,
        seed,
        parameters: m.parameters,
        top: power.top,
        dominant: power.dominant,
        top_iterations: power.iterations,
        top_converged: power.converged,
        trace: trace.mean,
        trace_std_error: trace.std_error,
        runs,
        width,
        products: m.products,
        scale: None,
    })
}

/// The config a model's measurement depends on: not which models are measured or compared.
/// The scale settings are left out (each scale cell keeps its own, checked at the merge), so
/// the main cells' key is the one from before the scale cells.
fn cell_key(cfg: &HessianConfig) -> HessianConfig {
    HessianConfig {
        schemes: Vec::new(),
        arms: paper_arms(),
        scale: LambdaScale::default(),
        ..cfg.clone()
    }
}

/// The measurement saved in a cell's directory, if there is one; one of another config is an
/// error.
fn load_measurement(dir: &RunDir, key: &HessianConfig) -> Result<Option<Measurement>> {
    let path = dir.file(MEASUREMENT_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let bad = |e: serde_json::Error| LabError::Run(format!("{}: {e}", path.display()));
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    // records from before the runner chose the seeds keyed their config with `seeds = 1`
    if let Some(config) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
        config.remove("seeds");
    }
    let m: Measurement = serde_json::from_value(value).map_err(bad)?;
    if &m.config != key {
        return Err(LabError::Run(format!(
            "{}: measured with another config; remove it or run without --resume",
            path.display()
        )));
    }
    Ok(Some(m))
}

/// An operator that reports its products as progress (a full-preset product takes ≈ 20 s).
struct Reported<'a, O> {
    op: &'a O,
    progress: RefCell<Progress>,
    done: Cell<usize>,
}

impl<'a, O: LinearOperator> Reported<'a, O> {
    fn new(op: &'a O, label: &str, expected: usize) -> Self {
        Reported {
            op,
            progress: RefCell::new(Progress::new(label, expected as u64)),
            done: Cell::new(0),
        }
    }

    /// Ends the report; returns the products made.
    fn finish(self) -> usize {
        let done = self.done.get();
        self.progress.into_inner().finish(&format!("({done} products)"));
        done
    }
}

impl<O: LinearOperator> LinearOperator for Reported<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply(&self, v: &[f64]) -> saturn_dynamics::Result<Vec<f64>> {
        let w = self.op.apply(v)?;
        self.done.set(self.done.get() + 1);
        self.progress.borrow_mut().set(self.done.get() as u64, "");
        Ok(w)
    }
}

/// Measures each scheme × seed and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: HessianConfig = ctx.open()?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let batches = data.valid_batches(cfg.pairs, cfg.batch_size)?;
    let weights = token_weights(&batches);
    let scale_batches = if cfg.scale.is_off() {
        Vec::new()
    } else {
        data.valid_batches(cfg.scale.pairs, cfg.scale.batch_size)?
    };
    let scale_weights = token_weights(&scale_batches);
    let scale_seeds: Vec<u64> = ctx.seeds.iter().copied().take(cfg.scale.seeds).collect();
    // one cell per model: scheme × seed, its phases resumable inside the cell; then, for the
    // scale trend, width × scheme × seed (labels `scale-d{d}-…`; cells sort by seed, so the
    // main cells keep their labels but not their indices)
    let mut cells = Vec::new();
    for &seed in &ctx.seeds {
        for &scheme in &cfg.schemes {
            let label = format!("{}-seed{seed}", scheme.name());
            cells.push(
                cells::Cell::new(seed, label, Job::Main(scheme)).minutes(estimated_minutes(&cfg)),
            );
        }
        if scale_seeds.contains(&seed) {
            for &d in &cfg.scale.widths {
                for &scheme in &cfg.schemes {
                    let label = format!("scale-d{d}-{}-seed{seed}", scheme.name());
                    let minutes = scale_minutes(&cfg, d);
                    cells.push(
                        cells::Cell::new(seed, label, Job::Scale(scheme, d)).minutes(minutes),
                    );
                }
            }
        }
    }
    let all: Vec<Spectrum> = ctx
        .cells(&cell_key(&cfg), cells, |cell, dir| match cell.spec {
            Job::Main(scheme) => {
                let shape = cfg.model.config(scheme, cfg.layers, cfg.layers, &data);
                let model = Seq2Seq::<f32>::new(shape, cell.seed)?;
                let loss = |b: usize| {
                    model.loss(
                        &batches[b].view(),
                        batches[b].tgt_out.view(),
                        &mut ForwardCtx::eval(),
                    )
                };
                let id = (cell.label.as_str(), scheme, cell.seed);
                measure(&cfg, id, dir, ctx.resume, model.parameters(), &weights, loss)
            }
            Job::Scale(scheme, d) => {
                let id = (cell.label.as_str(), scheme, cell.seed);
                measure_top(&cfg, &data, &scale_batches, &scale_weights, id, d)
            }
        })?
        .into_iter()
        .map(|(cell, spectrum)| match (cell.spec, &spectrum.scale) {
            (Job::Main(_), None) => Ok(spectrum),
            (Job::Scale(_, d), Some(s)) if *s == ScaleCell::of(&cfg, d) => Ok(spectrum),
            _ => Err(LabError::Run(format!(
                "cell `{}`: measured with other scale settings; remove its directory",
                cell.label
            ))),
        })
        .collect::<Result<_>>()?;
    let (scaled, spectra): (Vec<Spectrum>, Vec<Spectrum>) =
        all.into_iter().partition(|s| s.scale.is_some());
    write_tables(ctx, &cfg, &spectra)?;
    plot_density(ctx, &cfg, &spectra)?;
    let mut claims = claims(&cfg, &data, &spectra, &ctx.seeds);
    if !cfg.scale.is_off() {
        let trends = scale_trends(&cfg, &scaled, &scale_seeds);
        write_scale(ctx, &cfg, &trends)?;
        if let Some(c) = scale_claim(&cfg, &trends, &scale_seeds) {
            claims.push(c);
        }
    }
    Ok(claims)
}

/// What a cell measures: a main model (SLQ, λ_max, trace) or a scale-trend model (λ_max only)
/// at width d.
#[derive(Debug, Clone, Copy)]
enum Job {
    Main(ResidualScheme),
    Scale(ResidualScheme, usize),
}

/// Each micro-batch's share of the target tokens (the loss is the token-weighted mean).
fn token_weights(batches: &[SeqBatch]) -> Vec<f64> {
    let tokens: Vec<f64> = batches.iter().map(|b| b.target_tokens() as f64).collect();
    let total: f64 = tokens.iter().sum();
    tokens.iter().map(|t| t / total).collect()
}

/// A scale cell: λ_max of the `scale.layers`-layer model of width `d`, by power iteration
/// from the extreme Ritz vectors of `scale.warm_steps` Lanczos steps (`largest_eigenpair_from`,
/// as the main cells with `warm_start`). Not resumable inside the cell (a scale cell is
/// minutes, not an hour).
fn measure_top(
    cfg: &HessianConfig,
    data: &TranslationData,
    batches: &[SeqBatch],
    weights: &[f64],
    (name, scheme, seed): (&str, ResidualScheme, u64),
    d: usize,
) -> Result<Spectrum> {
    let s = &cfg.scale;
    let shape = Seq2SeqShape {
        d_model: d,
        d_ff: cfg.model.d_ff * d / cfg.model.d_model,
        ..cfg.model.clone()
    };
    let model = Seq2Seq::<f32>::new(shape.config(scheme, s.layers, s.layers, data), seed)?;
    let params = model.parameters();
    let parameters = params.iter().map(Tensor::len).sum();
    let loss = |b: usize| {
        model.loss(&batches[b].view(), batches[b].tgt_out.view(), &mut ForwardCtx::eval())
    };
    let h = if cfg.cache_graphs {
        Hessian::cached(params, weights.to_vec(), loss)?
    } else {
        Hessian::new(params, weights.to_vec(), loss)?
    };
    let op = Reported::new(&h, &format!("{name} Lanczos"), s.warm_steps);
    let ritz = Krylov::run(&op, s.warm_steps, derive_seed(seed, 43, 0))?.extreme_ritz_vectors()?;
    let mut products = op.finish();
    let power = PowerIteration {
        top_k: 1,
        max_iter: s.power_iterations,
        tol: cfg.power_tol,
        seed: derive_seed(seed, 41, 0),
    };
    let op = Reported::new(&h, &format!("{name} power"), 2 * s.power_iterations);
    let start = WarmStart { dominant: &ritz.dominant.1, largest: &ritz.largest.1 };
    let top = largest_eigenpair_from(&op, &power, start)?;
    products += op.finish();
    Ok(Spectrum {
        scheme,
        seed,
        parameters,
        top: top.largest.value,
        dominant: top.dominant.value,
        top_iterations: top.largest.iterations,
        top_converged: top.largest.converged && top.dominant.converged,
        trace: f64::NAN,
        trace_std_error: f64::NAN,
        runs: Vec::new(),
        width: f64::NAN,
        products,
        scale: Some(ScaleCell::of(cfg, d)),
    })
}

/// A scale cell's cost in core-minutes: `estimated_minutes`'s seconds per product (≈ 20 s at
/// 6-6 layers, d = 64, 1,000 pairs) scaled linearly in pairs and layers and quadratically in
/// the width above d = 64 (the matrix products dominate there; a d = 256 product at 6-6
/// layers and 100 pairs measured ≈ 20 core-s, this says 32 s), times the warm start's steps
/// and up to 10 power-iteration products. The full preset: ≈ 11 min a d = 256 cell, ≈ 2.4
/// core-hours for the 30 scale cells.
fn scale_minutes(cfg: &HessianConfig, d: usize) -> f64 {
    let s = &cfg.scale;
    let seconds_per_product = 20.0
        * (s.pairs as f64 / 1000.0)
        * (s.layers as f64 / 6.0)
        * (d as f64 / 64.0).max(1.0).powi(2);
    (s.warm_steps + 10.min(2 * s.power_iterations)) as f64 * seconds_per_product / 60.0
}

/// The three claims, each on one paired value per seed: arm a's spectrum against arm b's
/// (same init draw and data).
fn claims(
    cfg: &HessianConfig,
    data: &TranslationData,
    spectra: &[Spectrum],
    seeds: &[u64],
) -> Claims {
    let mut claims = Claims::default();
    let [a, b] = cfg.arms;
    if !(cfg.schemes.contains(&a) && cfg.schemes.contains(&b)) {
        return claims;
    }
    // (seed, arm a's value, arm b's value) for every seed, NaN where a model is missing
    let pairs = |f: &dyn Fn(&Spectrum) -> f64| -> Vec<(u64, f64, f64)> {
        seeds
            .iter()
            .map(|&seed| {
                let get = |s| {
                    spectra.iter().find(|x| x.seed == seed && x.scheme == s).map_or(f64::NAN, f)
                };
                (seed, get(a), get(b))
            })
            .collect()
    };
    let top = pairs(&|s| s.top);
    let dominant = pairs(&|s| s.dominant);
    let ritz_max = pairs(&|s| {
        s.runs.iter().map(|q| q.nodes[q.nodes.len() - 1]).fold(f64::NEG_INFINITY, f64::max)
    });
    let trace = pairs(&|s| s.trace);
    let trace_se = pairs(&|s| s.trace_std_error);
    let width = pairs(&|s| s.width);
    let (key_a, key_b) = (scheme_key(a), scheme_key(b));
    let rows = |v: &[(u64, f64, f64)]| {
        json!(
            v.iter()
                .map(|(s, x, y)| json!({"seed": s, key_a: x, key_b: y, "ratio": x / y}))
                .collect::<Vec<_>>()
        )
    };
    let data_note = match data.source {
        PairSource::Multi30k => "Multi30k val",
        PairSource::ShippedCorpus => "shipped-corpus fallback (no Multi30k)",
    };
    let (la, lb) = (label(a), label(b));
    let log_ratios = |v: &[(u64, f64, f64)]| -> Vec<f64> {
        v.iter().map(|(_, x, y)| log_ratio(*x, *y)).collect()
    };
    claims.push(
        Claim::builder("post-ln-larger-top-eigenvalue")
            .statement(format!("At Xavier init, {la}'s loss Hessian has a larger top eigenvalue than {lb}'s"))
            .source("student reproduction of Xiong et al. 2020 (docs/REFERENCES.md#hessian), PyHessian method; docs/REFERENCES.md#target-8")
            .expected(format!("per seed: ln(λ_max({la}) / λ_max({lb})) > 0, i.e. λ_max({la}) > λ_max({lb}) (power iteration, the top of the spectrum; undefined unless both are positive; the largest-|λ| eigenvalue and the largest Ritz value are shown beside it)"))
            .threshold(Threshold::from_source(DIRECTION))
            .measured("data", json!(data_note))
            .measured("top_eigenvalue", rows(&top))
            .measured("largest_magnitude_eigenvalue", rows(&dominant))
            .measured("largest_ritz_value", rows(&ritz_max))
            .evidence(Evidence::new(
                format!("ln(λ_max({la}) / λ_max({lb})), same seed: the same init draw and data"),
                seeds,
                log_ratios(&top),
                Rule::Above(0.0),
            )),
    );
    let abs_trace = pairs(&|s| density::abs_trace(&s.runs, s.parameters));
    claims.push(
        Claim::builder("post-ln-larger-total-curvature")
            .statement(format!("At Xavier init, {la}'s loss Hessian has a larger total curvature Σ|λ| = tr|H| than {lb}'s"))
            .source("student reproduction of Xiong et al. 2020 (docs/REFERENCES.md#hessian: larger curvature at init), docs/REFERENCES.md#target-8 (total curvature is Σ|λ| from the SLQ density, not the trace); SLQ as PyHessian (docs/REFERENCES.md#target-8)")
            .expected(format!("per seed: ln(tr|H|({la}) / tr|H|({lb})) > 0, tr|H| = n · Σ_j τ_j |θ_j| from the SLQ quadrature (n parameters, Ritz values θ_j, weights τ_j; mean over runs)"))
            .threshold(Threshold::from_source(DIRECTION))
            .measured("data", json!(data_note))
            .measured("abs_trace_slq", rows(&abs_trace))
            .measured("trace_hutchinson", rows(&trace))
            .measured("trace_hutchinson_std_error", rows(&trace_se))
            .evidence(Evidence::new(
                format!("ln(tr|H|({la}) / tr|H|({lb})) by SLQ, same seed"),
                seeds,
                log_ratios(&abs_trace),
                Rule::Above(0.0),
            )),
    );
    claims.push(
        Claim::builder("post-ln-wider-spectrum")
            .statement(format!("At Xavier init, {la}'s Hessian spectrum is wider than {lb}'s"))
            .source("student reproduction of Xiong et al. 2020 (docs/REFERENCES.md#hessian); docs/REFERENCES.md#target-8")
            .expected(format!("per seed: ln(width({la}) / width({lb})) > 0, width = largest minus smallest Ritz value of the SLQ runs (mean over runs)"))
            .threshold(Threshold::from_source(DIRECTION))
            .measured("data", json!(data_note))
            .measured("spectral_width", rows(&width))
            .evidence(Evidence::new(
                format!("ln(width({la}) / width({lb})), same seed"),
                seeds,
                log_ratios(&width),
                Rule::Above(0.0),
            )),
    );
    claims
}

/// A model's cost in core-minutes: its Hessian-vector products (the SLQ steps, the trace
/// probes, and the power iterations — a handful with `warm_start`, up to twice the limit
/// without) at ≈ 30 s each for the full preset's 6-6 layers, d = 64 and 1,000 pairs (20 s in
/// record 9041f45; 30 s on the 2-vCPU Xeon of issue 22's cells with both cores busy, 2026-12-07),
/// scaled linearly in pairs, layers and width (linearly, not as d²:
/// small models are overhead-bound — the quick preset's product takes ≈ 0.25 s, still above
/// this scaling's 0.16 s).
fn estimated_minutes(cfg: &HessianConfig) -> f64 {
    let power =
        if cfg.warm_start { 10.min(2 * cfg.power_iterations) } else { 2 * cfg.power_iterations };
    let products = cfg.lanczos_runs * cfg.lanczos_steps + power + cfg.trace_probes;
    let seconds_per_product = 30.0
        * (cfg.pairs as f64 / 1000.0)
        * (cfg.layers as f64 / 6.0)
        * (cfg.model.d_model as f64 / 64.0);
    products as f64 * seconds_per_product / 60.0
}

/// The key a scheme's values go under in `measured` ("post_ln", "pre_ln", "admin", …).
pub fn scheme_key(scheme: ResidualScheme) -> &'static str {
    match scheme {
        ResidualScheme::PostLn => "post_ln",
        ResidualScheme::PreLn => "pre_ln",
        ResidualScheme::Admin => "admin",
        ResidualScheme::DeepNorm => "deepnorm",
        ResidualScheme::BranchLn => "branch_ln",
    }
}

/// ln(x / y) for two positive values; NaN (undefined, never a pass) otherwise — a ratio of two
/// negative eigenvalues would read as positive.
fn log_ratio(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 { (x / y).ln() } else { f64::NAN }
}

/// The threshold of every hessian claim: a direction, as the source states it.
const DIRECTION: &str = "docs/REFERENCES.md#target-8 and #hessian: the reproduction claims \
    only a direction (Post-LN's curvature larger, 'ratio > 1 in every seed'); no size is given, \
    so the threshold is ln ratio > 0 — equal curvature, the null — judged by the 95 % t interval \
    of the per-seed log-ratio (PyHessian's method, docs/REFERENCES.md#hessian)";

fn write_tables(ctx: &ExperimentCtx, cfg: &HessianConfig, spectra: &[Spectrum]) -> Result<()> {
    let table: Vec<Vec<String>> = spectra
        .iter()
        .map(|s| {
            vec![
                s.scheme.name().into(),
                s.seed.to_string(),
                cfg.layers.to_string(),
                s.parameters.to_string(),
                s.top.to_string(),
                s.dominant.to_string(),
                s.top_iterations.to_string(),
                s.top_converged.to_string(),
                s.trace.to_string(),
                s.trace_std_error.to_string(),
                s.width.to_string(),
                s.runs
                    .iter()
                    .map(|q| q.nodes[q.nodes.len() - 1])
                    .fold(f64::NEG_INFINITY, f64::max)
                    .to_string(),
                s.runs.iter().map(|q| q.nodes[0]).fold(f64::INFINITY, f64::min).to_string(),
                s.products.to_string(),
            ]
        })
        .collect();
    ctx.dir.write_csv(
        "hessian.csv",
        &[
            "scheme",
            "seed",
            "layers",
            "parameters",
            "top_eigenvalue",
            "largest_magnitude_eigenvalue",
            "power_iterations",
            "power_converged",
            "trace",
            "trace_std_error",
            "slq_width",
            "ritz_max",
            "ritz_min",
            "hessian_vector_products",
        ],
        &table,
    )?;
    let mut ritz = Vec::new();
    for s in spectra {
        for (r, q) in s.runs.iter().enumerate() {
            for (node, w) in q.nodes.iter().zip(&q.weights) {
                ritz.push(vec![
                    s.scheme.name().into(),
                    s.seed.to_string(),
                    r.to_string(),
                    node.to_string(),
                    w.to_string(),
                ]);
            }
        }
    }
    ctx.dir.write_csv("ritz.csv", &["scheme", "seed", "run", "node", "weight"], &ritz)
}

/// Grid points of the density figure's common grid.
const DENSITY_POINTS: usize = 4000;

/// `density.csv` (every model's smoothed density on the common grid) and `density.png`: per
/// arm the mean over seeds and the seeds' pointwise min and max, against λ on a linear axis,
/// the density on a log axis (as PyHessian draws it: the outlying eigenvalues carry weights
/// 10⁻³–10⁻⁵ of the bulk's and vanish on a linear one), floored six decades below the peak.
/// The kernel and grid: [`density`].
fn plot_density(ctx: &ExperimentCtx, cfg: &HessianConfig, spectra: &[Spectrum]) -> Result<()> {
    let Some((grid, sigma)) =
        density::common_grid(spectra.iter().flat_map(|s| &s.runs), DENSITY_POINTS)
    else {
        return Ok(());
    };
    let mut table = Vec::new();
    let mut arms = Vec::new();
    for &scheme in &cfg.schemes {
        let ds: Vec<Vec<f64>> = spectra
            .iter()
            .filter(|s| s.scheme == scheme)
            .map(|s| {
                let d = density::smoothed(&s.runs, &grid, sigma);
                for (x, y) in grid.iter().zip(&d) {
                    table.push(vec![
                        scheme.name().into(),
                        s.seed.to_string(),
                        x.to_string(),
                        y.to_string(),
                    ]);
                }
                d
            })
            .collect();
        if !ds.is_empty() {
            arms.push((scheme, ds.len(), density::spread(&ds)));
        }
    }
    ctx.dir.write_csv("density.csv", &["scheme", "seed", "eigenvalue", "density"], &table)?;
    let peak = arms.iter().flat_map(|a| a.2.iter().map(|p| p.2)).fold(0.0, f64::max);
    let floor = peak * 1e-6;
    let mut series = Vec::new();
    for (scheme, n, spread) in &arms {
        let line = |f: fn(&(f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
            grid.iter().zip(spread).map(|(x, p)| (*x, f(p).max(floor))).collect()
        };
        let seeds = crate::plot::seeds_legend(*n);
        series.push(Series::new(format!("{} ({seeds})", label(*scheme)), line(|p| p.0)));
        if *n > 1 {
            series.push(Series::new(format!("{} seed min", label(*scheme)), line(|p| p.1)));
            series.push(Series::new(format!("{} seed max", label(*scheme)), line(|p| p.2)));
        }
    }
    let title = format!(
        "hessian: SLQ density at init, {}-{} layers, {} steps, σ = {}",
        cfg.layers,
        cfg.layers,
        cfg.lanczos_steps,
        short(sigma)
    );
    line_chart(
        &ctx.dir,
        "density",
        &Chart::new(&title).x("eigenvalue λ").y("density (unit area, log scale)").log_y(),
        &series,
    )
}

/// The scale cells as one [`ScaleTrend`] of λ_max per arm of `cfg.schemes` (seeds in
/// `seeds` order, NaN where a cell is missing).
fn scale_trends(cfg: &HessianConfig, scaled: &[Spectrum], seeds: &[u64]) -> Vec<ScaleTrend> {
    cfg.schemes
        .iter()
        .map(|&scheme| {
            let points = cfg.scale.widths.iter().map(|&d| {
                let v = seeds
                    .iter()
                    .map(|&seed| {
                        scaled
                            .iter()
                            .find(|s| {
                                s.scheme == scheme
                                    && s.seed == seed
                                    && s.scale.as_ref().is_some_and(|c| c.d_model == d)
                            })
                            .map_or(f64::NAN, |s| s.top)
                    })
                    .collect();
                (d, v)
            });
            ScaleTrend::new(label(scheme), points)
        })
        .collect()
}

/// `scale.csv` and `scale.png`: λ_max against d per arm (mean and 95 % interval over seeds).
fn write_scale(ctx: &ExperimentCtx, cfg: &HessianConfig, trends: &[ScaleTrend]) -> Result<()> {
    let mut table = Vec::new();
    for t in trends {
        for p in &t.points {
            for (k, v) in p.per_seed.iter().enumerate() {
                table.push(vec![
                    t.label.clone(),
                    p.d.to_string(),
                    ctx.seeds[k].to_string(),
                    v.to_string(),
                ]);
            }
        }
    }
    ctx.dir.write_csv("scale.csv", &["arm", "d_model", "seed", "top_eigenvalue"], &table)?;
    let title = format!(
        "hessian: λ_max at init against the width ({}-{} layers, {} pairs)",
        cfg.scale.layers, cfg.scale.layers, cfg.scale.pairs
    );
    scale_chart(&ctx.dir, "scale", &title, "λ_max (power iteration)", trends)
}

/// `post-ln-larger-top-eigenvalue-at-width`: the top-eigenvalue claim at the widest d of the
/// scale cells, with the trend of the log-ratio over d beside it.
fn scale_claim(cfg: &HessianConfig, trends: &[ScaleTrend], seeds: &[u64]) -> Option<ClaimBuilder> {
    let [a, b] = cfg.arms;
    let find = |s: ResidualScheme| trends.iter().find(|t| t.label == label(s));
    let (ta, tb) = (find(a)?, find(b)?);
    let ratio = ScaleTrend::new(
        format!("ln(λ_max({}) / λ_max({}))", label(a), label(b)),
        ta.points.iter().zip(&tb.points).map(|(p, q)| {
            (p.d, p.per_seed.iter().zip(&q.per_seed).map(|(x, y)| log_ratio(*x, *y)).collect())
        }),
    );
    // the trend: the per-seed slope of the log-ratio against ln d (the exponent of the ratio)
    let ln_d: Vec<f64> = ratio.points.iter().map(|p| (p.d as f64).ln()).collect();
    let slopes: Vec<f64> = (0..seeds.len())
        .map(|k| {
            let y: Vec<f64> = ratio.points.iter().map(|p| p.per_seed[k]).collect();
            crate::stats::slope(&ln_d, &y)
        })
        .collect();
    let slope_interval = crate::stats::t_interval(&slopes, crate::stats::LEVEL);
    let widest = ratio.points.last()?.d;
    let (la, lb) = (label(a), label(b));
    let s = &cfg.scale;
    Some(
        Claim::builder("post-ln-larger-top-eigenvalue-at-width")
            .statement(format!(
                "At Xavier init, {la}'s top Hessian eigenvalue stays larger than {lb}'s as the \
                 width grows to d = {widest}"
            ))
            .source(
                "student reproduction of Xiong et al. 2020 (docs/REFERENCES.md#hessian), stated \
                 at d = 512; issue 22's scale trend; docs/REFERENCES.md#target-8",
            )
            .expected(format!(
                "per seed, at the widest d = {widest}: ln(λ_max({la}) / λ_max({lb})) > 0 \
                 ({l}-{l} layers, {p} pairs, λ_max by power iteration warm-started from {w} \
                 Lanczos steps); the trend over d is the per-seed slope of that log-ratio \
                 against ln d, reported beside it",
                l = s.layers,
                p = s.pairs,
                w = s.warm_steps
            ))
            .threshold(Threshold::from_source(DIRECTION))
            .measured("widths", json!(cfg.scale.widths))
            .measured("top_eigenvalue_per_width", json!(trends))
            .measured("log_ratio_per_width", json!(ratio.points))
            .measured("log_ratio_slope_in_ln_d_per_seed", json!(slopes))
            .measured("log_ratio_slope_in_ln_d_interval", json!(slope_interval))
            .evidence(Evidence::new(
                format!("ln(λ_max({la}) / λ_max({lb})) at d = {widest}, same seed"),
                seeds,
                ratio.widest().to_vec(),
                Rule::Above(0.0),
            )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The main cells' key is the one from before the scale cells (issue 22: the full cells
    /// computed then must merge): the scale settings are not in it, and a key written without
    /// them reads back equal.
    #[test]
    fn the_scale_settings_stay_out_of_the_main_cells_key() {
        for preset in [Preset::Quick, Preset::Full] {
            let cfg = HessianConfig::preset(preset);
            assert!(!cfg.scale.is_off() && cfg.validate().is_ok());
            let key = serde_json::to_value(cell_key(&cfg)).unwrap();
            assert!(key.get("scale").is_none(), "{key}");
            let back: HessianConfig = serde_json::from_value(key).unwrap();
            assert_eq!(back, cell_key(&cfg));
        }
        let mut bad = HessianConfig::preset(Preset::Quick);
        bad.scale.widths.push(30); // not a multiple of the 4 heads
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_log_ratio_is_undefined_unless_both_values_are_positive() {
        assert!((log_ratio(2.0, 1.0) - 2f64.ln()).abs() < 1e-15);
        assert!(log_ratio(1.0, 2.0) < 0.0);
        // two negative top eigenvalues would otherwise read as a positive ratio
        assert!(log_ratio(-2.0, -1.0).is_nan());
        assert!(log_ratio(0.0, 1.0).is_nan());
        assert!(log_ratio(1.0, f64::NAN).is_nan());
    }
}
