//! `grad-norms` (Xiong et al. 2020, Theorem 1 and Fig. 3; docs/REFERENCES.md#xiong-theorem,
//! docs/REFERENCES.md#xiong-experiments, docs/REFERENCES.md#target-5, docs/REFERENCES.md#target-6):
//! gradient norms of the FFN's second weight matrix W^{2,l} at Xavier init, averaged over training
//! batches, for encoder–decoders (L encoder and L decoder layers) in eval mode.
//!
//! - Depth sweep: ‖∂L/∂W^{2,L}‖_F of the last decoder layer (the FFN next to the output) for
//!   L ∈ {2, 4, 8, 16}. Theorem 1: independent of L for Post-LN, ∝ 1/√L for Pre-LN.
//! - Profile: ‖∂L/∂W^{2,l}‖_F for l = 1..6 in a 6-6 model, encoder and decoder separately
//!   (Fig. 3a/c: rising toward the output for Post-LN, flat for Pre-LN).
//!
//! - Scale (`scale`): the depth sweep's last layer at the widths of `scale.widths`
//!   (d = 64 … 512 at full), on the seed's first `scale.batches` batches.
//!
//! Claims, each judged on one value per seed (an init draw; the batches are shared by the arms
//! of a seed) by the 95 % t interval of their mean ([`crate::claim`]); no gates (nothing is
//! trained). Thresholds from Theorem 1 and Fig. 3 (its panels cannot be read here: "panel
//! unverified"), or ours where said:
//!
//! - `post-ln-last-layer-depth-independent`: per seed, the log-log slope of the last-layer norm
//!   against L in [−¼, ¼] (nearer Theorem 1's 0 than Pre-LN's −½: `WINDOW_DERIVATION`);
//! - `pre-ln-last-layer-falls`: that slope in [−¾, −¼] (theory −½);
//! - `post-ln-profile-rises-{decoder,encoder}`: per seed, the slope of ln ‖∂L/∂W^{2,l}‖ on l
//!   > 0 (Fig. 3a's direction);
//! - `pre-ln-profile-flatter-{decoder,encoder}`: per seed, |rate(Post-LN)| − |rate(Pre-LN)| > 0
//!   (Fig. 3a against 3c);
//! - `pre-ln-encoder-profile-falls` (a finding, threshold ours): Pre-LN's encoder rate < 0;
//! - `post-ln-depth-independent-at-width`, `pre-ln-falls-at-width`: the first two at the
//!   widest scale width.
//!
//! The sabotage test (`tests/integration/sabotage_liu.rs`) swaps the Post-LN and Pre-LN arms
//! ([`Relabel`]).

mod scale;

use saturn_dynamics::gradient_norms;
use saturn_layers::{ForwardCtx, Module, ResidualScheme, Seq2Seq};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, Evidence, Rule, Threshold, short};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::stats::log_log_slope;
use crate::summary::Claims;
use crate::tasks::aggregate::mean;
use crate::tasks::relabel::Relabel;
use crate::tasks::scheme_label::label;
use crate::tasks::translation::Seq2SeqShape;
use crate::tasks::translation_data::{SeqBatch, TranslationData};
use crate::train::derive_seed;
use scale::ScaleSweep;

/// The config of `grad-norms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradNormsConfig {
    pub model: Seq2SeqShape,
    pub schemes: Vec<ResidualScheme>,
    /// Layers per side for the last-layer sweep.
    pub depths: Vec<usize>,
    /// Layers per side for the per-layer profile.
    pub profile_layers: usize,
    /// Training batches averaged over.
    pub batches: usize,
    pub batch_size: usize,
    pub vocab: usize,
    pub max_len: usize,
    /// Sabotage only (the falsifiability tests): arms built with another scheme than their
    /// label ([`Relabel`]). Empty in both presets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<Relabel>,
    /// The scale trend of the depth sweep: the same sweep at other widths (none when `widths`
    /// is empty).
    #[serde(default, skip_serializing_if = "GradScale::is_off")]
    pub scale: GradScale,
}

/// The depth sweep at several widths d (issue 22, "Scale": Theorem 1 is stated for d = 512),
/// init-only: the last layer's ‖∂L/∂W^{2,L}‖_F over `depths` at each d, on fewer batches than
/// the main sweep (the cost grows as d²).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradScale {
    /// The widths (d_ff and heads scaled as `model`'s); empty: no scale cells.
    pub widths: Vec<usize>,
    /// The first this many of a seed's batches (of `batch_size` pairs).
    pub batches: usize,
    /// The first this many of the run's seeds.
    pub seeds: usize,
}

impl GradScale {
    pub fn is_off(&self) -> bool {
        self.widths.is_empty()
    }
}

impl ExperimentConfig for GradNormsConfig {
    /// quick: d = 128, 2 batches of 32 pairs, the scale sweep at d = 32, 64 on 2 batches (at
    /// d = 64 and 4 batches, each depth's init draw moved the last-layer norm by ±20 %, and with
    /// 3 seeds the depth exponents' t intervals (t = 4.3) straddled their windows in one of
    /// seeds 0 and 4243 but not the other; the fluctuations shrink with d, as Theorem 1's
    /// concentration arguments say);
    /// full: d = 256, 16 batches of 64 pairs (≈ 39 core-min), the scale sweep at d = 64, 128
    /// and 512 on 2 batches (≈ 18 core-min for 5 seeds, 16 of them at d = 512; d = 256 is the
    /// main sweep).
    fn preset(preset: Preset) -> Self {
        let (d, batches, batch_size, widths) = match preset {
            Preset::Quick => (128, 2, 32, vec![32, 64, 128]),
            Preset::Full => (256, 16, 64, vec![64, 128, 256, 512]),
        };
        GradNormsConfig {
            model: Seq2SeqShape::of_width(d),
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn],
            depths: vec![2, 4, 8, 16],
            profile_layers: 6,
            batches,
            batch_size,
            vocab: 2000,
            max_len: 64,
            relabel: Vec::new(),
            scale: GradScale { widths, batches: 2, seeds: 5 },
        }
    }

    fn validate(&self) -> Result<()> {
        if self.depths.is_empty()
            || self.profile_layers < 2
            || self.batches == 0
            || self.batch_size == 0
        {
            return Err(LabError::Config(
                "need depths, ≥ 2 profile layers and a positive number of batches".into(),
            ));
        }
        let s = &self.scale;
        if !s.is_off()
            && (s.batches == 0
                || s.batches > self.batches
                || s.seeds == 0
                || self.depths.len() < 2
                || s.widths.iter().any(|&d| d == 0 || d % self.model.n_heads != 0))
        {
            return Err(LabError::Config(
                "scale: 1 ≤ batches ≤ the sweep's batches, ≥ 1 seed, ≥ 2 depths, and every \
                 width a multiple of the heads"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// ‖∂L/∂W^{2,l}‖_F (mean over batches) of every encoder and decoder layer l: one cell's
/// output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    encoder: Vec<f64>,
    decoder: Vec<f64>,
}

fn profile(
    cfg: &GradNormsConfig,
    shape: &Seq2SeqShape,
    data: &TranslationData,
    batches: &[SeqBatch],
    (scheme, layers): (ResidualScheme, usize),
    seed: u64,
) -> Result<Profile> {
    let built = Relabel::scheme(&cfg.relabel, scheme);
    let model = Seq2Seq::<f32>::new(shape.config(built, layers, layers, data), seed)?;
    let params: Vec<_> = model
        .named_parameters()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".ffn.w2.weight"))
        .collect();
    let norms = gradient_norms(&params, batches.len(), |b| {
        model.loss(&batches[b].view(), batches[b].tgt_out.view(), &mut ForwardCtx::eval())
    })?;
    let side =
        |prefix: &str| -> Result<Vec<f64>> {
            (0..layers)
                .map(|l| {
                    let name = format!("{prefix}.layers.{l}.ffn.w2.weight");
                    norms.iter().find(|g| g.name == name).map(|g| g.mean).ok_or_else(|| {
                        LabError::Run(format!("the model has no parameter `{name}`"))
                    })
                })
                .collect()
        };
    Ok(Profile { encoder: side("enc")?, decoder: side("dec")? })
}

/// A model's cost in core-minutes: ≈ 6.5 s per layer and side at the full preset (d = 256,
/// 16 batches of 64 pairs: 2,330 s for 5 seeds × 2 schemes × 36 layers, record e0c09a8),
/// linear in layers and pairs, quadratic in the width.
fn estimated_minutes(cfg: &GradNormsConfig, layers: usize, batches: usize, d: usize) -> f64 {
    let pairs = (batches * cfg.batch_size) as f64 / 1024.0;
    let width = (d as f64 / 256.0).powi(2);
    6.5 / 60.0 * layers as f64 * pairs * width
}

/// Sweeps depths and profiles, then checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: GradNormsConfig = ctx.open()?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    // one cell per model: scheme × layers × seed, over the sweep's depths and the profile's
    // (a depth in both is one model: the same init and batches give the same norms)
    let mut model_layers = cfg.depths.clone();
    if !model_layers.contains(&cfg.profile_layers) {
        model_layers.push(cfg.profile_layers);
    }
    let scale_seeds: Vec<u64> = ctx.seeds.iter().copied().take(cfg.scale.seeds).collect();
    let d_main = cfg.model.d_model;
    let mut cells = Vec::new();
    for &seed in &ctx.seeds {
        for &scheme in &cfg.schemes {
            for &l in &model_layers {
                let label = format!("{}-l{l}-seed{seed}", scheme.name());
                let minutes = estimated_minutes(&cfg, l, cfg.batches, d_main);
                cells.push(Cell::new(seed, label, (scheme, l, None)).minutes(minutes));
            }
        }
        // the scale sweep: the depth sweep at every other width, on the seed's first batches
        // (at the main width it is the main sweep)
        if scale_seeds.contains(&seed) {
            for &d in cfg.scale.widths.iter().filter(|&&d| d != d_main) {
                for &scheme in &cfg.schemes {
                    for &l in &cfg.depths {
                        let label = format!("scale-d{d}-{}-l{l}-seed{seed}", scheme.name());
                        let minutes = estimated_minutes(&cfg, l, cfg.scale.batches, d);
                        cells.push(Cell::new(seed, label, (scheme, l, Some(d))).minutes(minutes));
                    }
                }
            }
        }
    }
    // a model's norms do not depend on which other schemes, depths and widths run
    let key = GradNormsConfig {
        schemes: Vec::new(),
        depths: Vec::new(),
        profile_layers: 0,
        scale: GradScale { widths: Vec::new(), ..cfg.scale.clone() },
        ..cfg.clone()
    };
    // the batches of the last seed computed: a seed's cells are consecutive
    let mut seed_batches: Option<(u64, Vec<SeqBatch>)> = None;
    let measured = ctx.cells(&key, cells, |cell, _| {
        let seed = cell.seed;
        if seed_batches.as_ref().is_none_or(|(s, _)| *s != seed) {
            let batches = data
                .train_epoch(cfg.batch_size, derive_seed(seed, 31, 0), 0)?
                .into_iter()
                .take(cfg.batches)
                .collect();
            seed_batches = Some((seed, batches));
        }
        let (_, batches) = seed_batches.as_ref().expect("filled above");
        match cell.spec {
            (scheme, l, None) => profile(&cfg, &cfg.model, &data, batches, (scheme, l), seed),
            (scheme, l, Some(d)) => {
                let shape = Seq2SeqShape {
                    d_model: d,
                    d_ff: cfg.model.d_ff * d / cfg.model.d_model,
                    ..cfg.model.clone()
                };
                let few = &batches[..cfg.scale.batches];
                profile(&cfg, &shape, &data, few, (scheme, l), seed)
            }
        }
    })?;
    let (main, scaled): (Vec<_>, Vec<_>) =
        measured.into_iter().partition(|(cell, _)| cell.spec.2.is_none());
    let main = main.into_iter().map(|(c, p)| (Cell::new(c.seed, c.label, (c.spec.0, c.spec.1)), p));
    let (sweep, profiles) = by_use(&cfg, main.collect());
    write_tables(ctx, &sweep, &profiles)?;
    draw_figures(ctx, &cfg, &sweep, &profiles)?;
    let mut claims = claims(&cfg, &sweep, &profiles, &ctx.seeds);
    if !cfg.scale.is_off() {
        let scale = ScaleSweep::new(&cfg, &scaled, &sweep, &scale_seeds);
        scale.write(ctx, &cfg)?;
        for c in scale.claims(&cfg, &scale_seeds) {
            claims.push(c);
        }
    }
    Ok(claims)
}

/// One model of the depth sweep: (scheme, L, seed, last decoder layer's and last encoder
/// layer's ‖∂L/∂W²‖).
type SweepRow = (ResidualScheme, usize, u64, f64, f64);
/// One model at the profile's depth: (scheme, seed, per-layer norms).
type ProfileRow = (ResidualScheme, u64, Profile);

/// The measured models as the depth sweep and the profile use them (a model at a depth of both
/// serves both).
fn by_use(
    cfg: &GradNormsConfig,
    measured: Vec<(Cell<(ResidualScheme, usize)>, Profile)>,
) -> (Vec<SweepRow>, Vec<ProfileRow>) {
    let (mut sweep, mut profiles) = (Vec::new(), Vec::new());
    for (cell, p) in measured {
        let ((scheme, l), seed) = (cell.spec, cell.seed);
        if cfg.depths.contains(&l) {
            sweep.push((scheme, l, seed, p.decoder[l - 1], p.encoder[l - 1]));
        }
        if l == cfg.profile_layers {
            profiles.push((scheme, seed, p));
        }
    }
    (sweep, profiles)
}

/// `last_layer.csv` (the depth sweep) and `profile.csv` (the per-layer norms).
fn write_tables(ctx: &ExperimentCtx, sweep: &[SweepRow], profiles: &[ProfileRow]) -> Result<()> {
    let mut table = Vec::new();
    for (scheme, l, seed, dec, enc) in sweep {
        table.push(vec![
            scheme.name().into(),
            l.to_string(),
            seed.to_string(),
            dec.to_string(),
            enc.to_string(),
        ]);
    }
    ctx.dir.write_csv(
        "last_layer.csv",
        &["scheme", "layers", "seed", "decoder_w2_last_grad_norm", "encoder_w2_last_grad_norm"],
        &table,
    )?;
    let mut table = Vec::new();
    for (scheme, seed, p) in profiles {
        for (side, values) in [("encoder", &p.encoder), ("decoder", &p.decoder)] {
            for (l, g) in values.iter().enumerate() {
                table.push(vec![
                    scheme.name().into(),
                    seed.to_string(),
                    side.into(),
                    (l + 1).to_string(),
                    g.to_string(),
                ]);
            }
        }
    }
    ctx.dir.write_csv("profile.csv", &["scheme", "seed", "side", "layer", "w2_grad_norm"], &table)
}

/// The seed means of the last decoder layer's norm over the depth grid (`last`) and of one
/// side's per-layer profile (`side`), for a scheme.
struct SeedMeans<'a> {
    cfg: &'a GradNormsConfig,
    sweep: &'a [SweepRow],
    profiles: &'a [ProfileRow],
}

impl SeedMeans<'_> {
    fn last(&self, scheme: ResidualScheme) -> Vec<f64> {
        let sweep = self.sweep;
        self.cfg
            .depths
            .iter()
            .map(|&l| {
                let v: Vec<f64> =
                    sweep.iter().filter(|r| r.0 == scheme && r.1 == l).map(|r| r.3).collect();
                mean(&v)
            })
            .collect()
    }

    fn side(&self, scheme: ResidualScheme, decoder: bool) -> Vec<f64> {
        let ps: Vec<&Profile> =
            self.profiles.iter().filter(|p| p.0 == scheme).map(|p| &p.2).collect();
        (0..self.cfg.profile_layers)
            .map(|l| {
                let v: Vec<f64> =
                    ps.iter().map(|p| if decoder { p.decoder[l] } else { p.encoder[l] }).collect();
                mean(&v)
            })
            .collect()
    }
}

/// `last_layer` (the last decoder layer's norm against L, log-log) and `profile` (every
/// layer's norm at the profile's depth).
fn draw_figures(
    ctx: &ExperimentCtx,
    cfg: &GradNormsConfig,
    sweep: &[SweepRow],
    profiles: &[ProfileRow],
) -> Result<()> {
    let means = SeedMeans { cfg, sweep, profiles };
    let depths: Vec<f64> = cfg.depths.iter().map(|&l| l as f64).collect();
    let series: Vec<Series> = cfg
        .schemes
        .iter()
        .map(|&s| Series::new(label(s), depths.iter().copied().zip(means.last(s)).collect()))
        .collect();
    line_chart(
        &ctx.dir,
        "last_layer",
        &Chart::new("grad-norms at init: last decoder layer's W² vs depth")
            .x("layers L (encoder = decoder)")
            .y("‖∂L/∂W^{2,L}‖_F")
            .log_x()
            .log_y(),
        &series,
    )?;
    let layers: Vec<f64> = (1..=cfg.profile_layers).map(|l| l as f64).collect();
    let mut series = Vec::new();
    for &s in &cfg.schemes {
        for (name, dec) in [("encoder", false), ("decoder", true)] {
            let pts = layers.iter().copied().zip(means.side(s, dec)).collect();
            series.push(Series::new(format!("{} {name}", label(s)), pts));
        }
    }
    line_chart(
        &ctx.dir,
        "profile",
        &Chart::new("grad-norms at init: W^{2,l} per layer")
            .x("layer l")
            .y("‖∂L/∂W^{2,l}‖_F")
            .log_y(),
        &series,
    )?;
    Ok(())
}

/// Post-LN's window for the depth exponent p of ‖∂L/∂W^{2,L}‖_F ∝ L^p: [−¼, ¼].
pub(crate) fn post_ln_window() -> (f64, f64) {
    (-0.25, 0.25)
}

/// Pre-LN's window: [−¾, −¼].
pub(crate) fn depth_window() -> (f64, f64) {
    (-0.75, -0.25)
}

/// Where both windows come from.
const WINDOW_DERIVATION: &str = "Xiong et al. 2020, Theorem 1 (docs/REFERENCES.md#xiong-theorem): \
    Post-LN's last-layer gradient is O(d√(ln d)), exponent 0 in L, Pre-LN's O(d√(ln d / L)), \
    exponent −½. The theorem's rates differ by ½ in the exponent and Fig. 3d (panel \
    unverified: its values cannot be read here) shows only that contrast, so each window is \
    the exponents nearer to its arm's rate than to the other's (or to its mirror): Post-LN \
    |p| < ¼, Pre-LN p in [−¾, −¼]. (Before issue 22, Post-LN's window was |p| < ln 1.25 / ln 8 \
    = 0.107, from an unsourced '< 25 % over L', narrower than the 5-seed noise of the full \
    preset's slopes, s.d. 0.05: inconclusive with a mean of 0.045.)";

/// Per seed, the least-squares slope of ln ‖∂L/∂W^{2,l}‖_F on the layer index l (the profile's
/// exponential rate per layer; NaN when a layer is missing or not positive).
fn layer_rate(profile: &[f64]) -> f64 {
    if profile.iter().any(|g| !(g.is_finite() && *g > 0.0)) {
        return f64::NAN;
    }
    let l: Vec<f64> = (1..=profile.len()).map(|l| l as f64).collect();
    let ln: Vec<f64> = profile.iter().map(|g| g.ln()).collect();
    crate::stats::slope(&l, &ln)
}

/// The claims on the last layer's norm over depth and on the per-layer profiles.
fn claims(
    cfg: &GradNormsConfig,
    sweep: &[SweepRow],
    profiles: &[ProfileRow],
    seeds: &[u64],
) -> Claims {
    let means = SeedMeans { cfg, sweep, profiles };
    let depths: Vec<f64> = cfg.depths.iter().map(|&l| l as f64).collect();
    let mut claims = Claims::default();
    let has = |s| cfg.schemes.contains(&s);
    let relabelled = json!(cfg.relabel);
    // per seed, in `seeds` order: the last decoder layer's norm over the depth grid, and the
    // profile of one side (NaN where an arm is missing)
    let last_per_seed = |scheme: ResidualScheme| -> Vec<Vec<f64>> {
        seeds
            .iter()
            .map(|&seed| {
                cfg.depths
                    .iter()
                    .map(|&l| {
                        sweep
                            .iter()
                            .find(|r| r.0 == scheme && r.1 == l && r.2 == seed)
                            .map_or(f64::NAN, |r| r.3)
                    })
                    .collect()
            })
            .collect()
    };
    let side_per_seed = |scheme: ResidualScheme, decoder: bool| -> Vec<Vec<f64>> {
        seeds
            .iter()
            .map(|&seed| {
                profiles.iter().find(|p| p.0 == scheme && p.1 == seed).map_or_else(
                    || vec![f64::NAN; cfg.profile_layers],
                    |p| if decoder { p.2.decoder.clone() } else { p.2.encoder.clone() },
                )
            })
            .collect()
    };
    let exponents = |curves: &[Vec<f64>]| -> Vec<f64> {
        curves.iter().map(|c| log_log_slope(&depths, c)).collect()
    };
    for (scheme, id, statement, theory, (lo, hi)) in [
        (
            ResidualScheme::PostLn,
            "post-ln-last-layer-depth-independent",
            "At init, Post-LN's gradient of W^{2,L} does not depend on the depth L",
            "Xiong et al. 2020, Theorem 1 (Post-LN: O(d√(ln d)), independent of L) and Fig. 3d \
             (panel unverified); docs/REFERENCES.md#target-5",
            post_ln_window(),
        ),
        (
            ResidualScheme::PreLn,
            "pre-ln-last-layer-falls",
            "At init, Pre-LN's gradient of W^{2,L} falls like 1/√L",
            "Xiong et al. 2020, Theorem 1 (Pre-LN: O(d√(ln d / L))) and Fig. 3d (panel \
             unverified); docs/REFERENCES.md#target-5",
            depth_window(),
        ),
    ] {
        if !has(scheme) {
            continue;
        }
        let curves = last_per_seed(scheme);
        claims.push(
            Claim::builder(id)
                .statement(statement)
                .source(theory)
                .expected(format!(
                    "per seed, the log-log slope of the last decoder layer's ‖∂L/∂W^{{2,L}}‖_F \
                     against L = {:?} in [{}, {}] (theory {})",
                    cfg.depths,
                    short(lo),
                    short(hi),
                    if scheme == ResidualScheme::PostLn { "0" } else { "−0.5" }
                ))
                .threshold(Threshold::from_source(WINDOW_DERIVATION))
                .measured("depths", json!(cfg.depths))
                .measured("grad_norm", json!(means.last(scheme)))
                .measured("grad_norm_per_seed", json!(curves))
                .measured("relabel", relabelled.clone())
                .evidence(Evidence::new(
                    format!(
                        "log-log slope of the last decoder layer's ‖∂L/∂W²‖_F against L ({})",
                        label(scheme)
                    ),
                    seeds,
                    exponents(&curves),
                    Rule::Within(lo, hi),
                )),
        );
    }
    let n = cfg.profile_layers;
    let profile_measured = |b: crate::claim::ClaimBuilder, scheme, dec, ps: &Vec<Vec<f64>>| {
        b.measured("profile", json!(means.side(scheme, dec)))
            .measured("profile_per_seed", json!(ps))
            .measured("relabel", relabelled.clone())
    };
    for (name, dec) in [("decoder", true), ("encoder", false)] {
        let post = side_per_seed(ResidualScheme::PostLn, dec);
        let pre = side_per_seed(ResidualScheme::PreLn, dec);
        let post_rate: Vec<f64> = post.iter().map(|p| layer_rate(p)).collect();
        let pre_rate: Vec<f64> = pre.iter().map(|p| layer_rate(p)).collect();
        if has(ResidualScheme::PostLn) {
            let b = Claim::builder(&format!("post-ln-profile-rises-{name}"))
                .statement(format!(
                    "At init, Post-LN's W² gradient grows toward the output across the {name}'s \
                     layers"
                ))
                .source(
                    "Xiong et al. 2020, Fig. 3a (Post-LN at init, 6-6 IWSLT model: the norm grows \
                     with the layer index; panel unverified) and the extension of Theorem 1 \
                     (largest near the output); docs/REFERENCES.md#target-6, \
                     docs/REFERENCES.md#xiong-experiments",
                )
                .expected(format!(
                    "per seed, the least-squares slope of ln ‖∂L/∂W^{{2,l}}‖_F on l = 1..{n} in \
                     the {n}-layer {name} > 0"
                ))
                .threshold(Threshold::from_source(
                    "Fig. 3a as docs/REFERENCES.md#xiong-experiments and PAPERS.md §3.3 describe \
                     it: the norm grows with the layer index, a direction without a size (panel \
                     unverified: its values cannot be read here); the fitted rate over all \
                     layers > 0, the null of no trend. (Before issue 22: layer 6 / layer 1 > 2, \
                     a size the figure's description does not give.)",
                ));
            claims.push(profile_measured(b, ResidualScheme::PostLn, dec, &post).evidence(
                Evidence::new(
                    format!("slope of ln ‖∂L/∂W²‖_F on the {name} layer index (Post-LN)"),
                    seeds,
                    post_rate.clone(),
                    Rule::Above(0.0),
                ),
            ));
        }
        if has(ResidualScheme::PostLn) && has(ResidualScheme::PreLn) {
            let flatter: Vec<f64> =
                post_rate.iter().zip(&pre_rate).map(|(a, b)| a.abs() - b.abs()).collect();
            let b = Claim::builder(&format!("pre-ln-profile-flatter-{name}"))
                .statement(format!(
                    "At init, Pre-LN's W² gradient varies less across the {name}'s layers than \
                     Post-LN's"
                ))
                .source(
                    "Xiong et al. 2020, Fig. 3a against 3c (Post-LN grows, Pre-LN roughly flat; \
                     panels unverified) and the extension of Theorem 1; \
                     docs/REFERENCES.md#target-6",
                )
                .expected(format!(
                    "per seed, |rate(Post-LN)| − |rate(Pre-LN)| > 0, rate = the slope of ln \
                     ‖∂L/∂W^{{2,l}}‖_F on l = 1..{n} in the {name}"
                ))
                .threshold(Threshold::from_source(
                    "Fig. 3a vs 3c as docs/REFERENCES.md#xiong-experiments describes them: \
                     'roughly flat' is stated only against Post-LN's growth, so the claim is \
                     the comparison, paired by seed, with the null 0 (panels unverified: their \
                     values cannot be read here). (Before issue 22: every layer within ±30 % of \
                     the mean, a band the paper does not give.)",
                ))
                .measured("rate_post_ln_per_seed", json!(post_rate))
                .measured("rate_pre_ln_per_seed", json!(pre_rate));
            claims.push(profile_measured(b, ResidualScheme::PreLn, dec, &pre).evidence(
                Evidence::new(
                    format!(
                        "|slope of ln ‖∂L/∂W²‖_F on the {name} layer| of Post-LN minus Pre-LN's"
                    ),
                    seeds,
                    flatter,
                    Rule::Above(0.0),
                ),
            ));
        }
        if !dec && has(ResidualScheme::PreLn) {
            let b = Claim::builder("pre-ln-encoder-profile-falls")
                .statement(
                    "At init, Pre-LN's W² gradient falls from the first encoder layer to the last \
                     (a finding: the paper calls it roughly flat)",
                )
                .source(
                    "ours (issue 22): the full preset's Pre-LN encoder profile falls from 0.51 to \
                     0.27 over 6 layers in seed 0; a lower layer's W² receives the gradient of \
                     every later residual path. Xiong et al. 2020 Fig. 3c (panel unverified) \
                     describe it as roughly flat; docs/REFERENCES.md#target-6",
                )
                .expected(format!(
                    "per seed, the least-squares slope of ln ‖∂L/∂W^{{2,l}}‖_F on l = 1..{n} in \
                     the {n}-layer encoder < 0"
                ))
                .threshold(Threshold::ours(
                    "a direction: 0 is the null of a flat profile, the paper's description; a \
                     fall of any size is the finding",
                ));
            claims.push(profile_measured(b, ResidualScheme::PreLn, dec, &pre).evidence(
                Evidence::new(
                    "slope of ln ‖∂L/∂W²‖_F on the encoder layer index (Pre-LN)",
                    seeds,
                    pre_rate.clone(),
                    Rule::Below(0.0),
                ),
            ));
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_rate_is_the_exponential_rate_per_layer() {
        let rising: Vec<f64> = (1..=6).map(|l| 0.1 * (0.3 * l as f64).exp()).collect();
        assert!((layer_rate(&rising) - 0.3).abs() < 1e-12);
        assert!(layer_rate(&[1.0, 0.0, 2.0]).is_nan());
        assert!(layer_rate(&[1.0, f64::NAN]).is_nan());
        let (a, b) = (post_ln_window(), depth_window());
        // each window is the exponents nearer its arm's rate (0, −½) than the other's
        assert_eq!((a.0, b.1), (-0.25, -0.25));
    }

    #[test]
    fn the_presets_validate_and_a_too_large_scale_batch_count_does_not() {
        for preset in [Preset::Quick, Preset::Full] {
            assert!(GradNormsConfig::preset(preset).validate().is_ok());
        }
        let mut bad = GradNormsConfig::preset(Preset::Quick);
        bad.scale.batches = bad.batches + 1;
        assert!(bad.validate().is_err());
    }
}
