//! `grad-norms` (Xiong et al. 2020, Theorem 1 and Fig. 3; PAPERS.md §3.2–3.3, §6 targets 5–6):
//! gradient norms of the FFN's second weight matrix W^{2,l} at Xavier init, averaged over
//! training batches, for encoder–decoders (L encoder and L decoder layers) in eval mode.
//!
//! - Depth sweep: ‖∂L/∂W^{2,L}‖_F of the last decoder layer (the FFN next to the output) for
//!   L ∈ {2, 4, 8, 16}. Theorem 1: independent of L for Post-LN, ∝ 1/√L for Pre-LN.
//! - Profile: ‖∂L/∂W^{2,l}‖_F for l = 1..6 in a 6-6 model, encoder and decoder separately
//!   (Fig. 3a/c: rising toward the output for Post-LN, flat for Pre-LN).
//!
//! Claims: Post-LN's last-layer norm varies by < 25 % over L; Pre-LN's L = 16 / L = 4 ratio is
//! 0.5 ± 0.15; Post-LN's profile rises toward the output (layer 6 / layer 1 > 2) in the decoder
//! and in the encoder (two claims); Pre-LN's profile is flat within ±30 % of its mean in the
//! decoder and in the encoder (two claims).

use saturn_dynamics::gradient_norms;
use saturn_layers::{ForwardCtx, Module, ResidualScheme, Seq2Seq};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::schemes::{label, mean};
use super::translation::{Seq2SeqShape, SeqBatch, TranslationData};
use crate::config::{Preset, resolve};
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::summary::Claims;
use crate::train::derive_seed;

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
}

impl GradNormsConfig {
    /// quick: d = 64, 4 batches of 32 pairs; full: d = 256, 16 batches of 64 pairs.
    pub fn preset(preset: Preset) -> Self {
        let (d, batches, batch_size) = match preset {
            Preset::Quick => (64, 4, 32),
            Preset::Full => (256, 16, 64),
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
        }
    }
}

/// ‖∂L/∂W^{2,l}‖_F (mean over batches) of every encoder and decoder layer l.
struct Profile {
    encoder: Vec<f64>,
    decoder: Vec<f64>,
}

fn profile(
    cfg: &GradNormsConfig,
    data: &TranslationData,
    batches: &[SeqBatch],
    scheme: ResidualScheme,
    layers: usize,
    seed: u64,
) -> Result<Profile> {
    let model = Seq2Seq::<f32>::new(cfg.model.config(scheme, layers, layers, data), seed)?;
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

/// Sweeps depths and profiles, then checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(GradNormsConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    if cfg.depths.is_empty() || cfg.profile_layers < 2 || cfg.batches == 0 || cfg.batch_size == 0 {
        return Err(LabError::Config(
            "need depths, ≥ 2 profile layers and a positive number of batches".into(),
        ));
    }
    ctx.dir.write_toml("config.toml", &cfg)?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let mut sweep = Vec::new(); // (scheme, L, seed, last decoder, last encoder)
    let mut profiles = Vec::new(); // (scheme, seed, profile)
    for &seed in &ctx.seeds {
        let batches: Vec<SeqBatch> = data
            .train_epoch(cfg.batch_size, derive_seed(seed, 31, 0), 0)?
            .into_iter()
            .take(cfg.batches)
            .collect();
        for &scheme in &cfg.schemes {
            for &l in &cfg.depths {
                let p = profile(&cfg, &data, &batches, scheme, l, seed)?;
                sweep.push((scheme, l, seed, p.decoder[l - 1], p.encoder[l - 1]));
            }
            profiles.push((
                scheme,
                seed,
                profile(&cfg, &data, &batches, scheme, cfg.profile_layers, seed)?,
            ));
        }
    }
    let mut table = Vec::new();
    for (scheme, l, seed, dec, enc) in &sweep {
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
    for (scheme, seed, p) in &profiles {
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
    ctx.dir.write_csv(
        "profile.csv",
        &["scheme", "seed", "side", "layer", "w2_grad_norm"],
        &table,
    )?;

    // seed means
    let last = |scheme: ResidualScheme| -> Vec<f64> {
        cfg.depths
            .iter()
            .map(|&l| {
                mean(
                    &sweep
                        .iter()
                        .filter(|r| r.0 == scheme && r.1 == l)
                        .map(|r| r.3)
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    let side = |scheme: ResidualScheme, decoder: bool| -> Vec<f64> {
        let ps: Vec<&Profile> = profiles.iter().filter(|p| p.0 == scheme).map(|p| &p.2).collect();
        (0..cfg.profile_layers)
            .map(|l| {
                mean(
                    &ps.iter()
                        .map(|p| if decoder { p.decoder[l] } else { p.encoder[l] })
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    let depths: Vec<f64> = cfg.depths.iter().map(|&l| l as f64).collect();
    let series: Vec<Series> = cfg
        .schemes
        .iter()
        .map(|&s| Series::new(label(s), depths.iter().copied().zip(last(s)).collect()))
        .collect();
    line_chart(
        &ctx.dir,
        "last_layer",
        &Chart {
            title: "grad-norms at init: last decoder layer's W² vs depth",
            x_label: "layers L (encoder = decoder)",
            y_label: "‖∂L/∂W^{2,L}‖_F",
            log_x: true,
            log_y: true,
        },
        &series,
    )?;
    let layers: Vec<f64> = (1..=cfg.profile_layers).map(|l| l as f64).collect();
    let mut series = Vec::new();
    for &s in &cfg.schemes {
        for (name, dec) in [("encoder", false), ("decoder", true)] {
            let pts = layers.iter().copied().zip(side(s, dec)).collect();
            series.push(Series::new(format!("{} {name}", label(s)), pts));
        }
    }
    line_chart(
        &ctx.dir,
        "profile",
        &Chart {
            title: "grad-norms at init: W^{2,l} per layer",
            x_label: "layer l",
            y_label: "‖∂L/∂W^{2,l}‖_F",
            log_x: false,
            log_y: true,
        },
        &series,
    )?;

    let mut claims = Claims::default();
    let has = |s| cfg.schemes.contains(&s);
    if has(ResidualScheme::PostLn) {
        let g = last(ResidualScheme::PostLn);
        let (lo, hi) = (
            g.iter().copied().fold(f64::INFINITY, f64::min),
            g.iter().copied().fold(0.0, f64::max),
        );
        claims.add(
            "post-ln-last-layer-depth-independent",
            "At init, Post-LN's gradient of W^{2,L} does not depend on the depth L",
            "Xiong et al. 2020, Theorem 1 (Post-LN: O(d√(ln d))) and Fig. 3d; PAPERS.md §6 target 5",
            "(max − min)/min over L of ‖∂L/∂W^{2,L}‖_F < 0.25 (seed means)",
            [("depths", json!(cfg.depths)), ("grad_norm", json!(g)), ("variation", json!((hi - lo) / lo))],
            (hi - lo) / lo < 0.25,
        );
    }
    if has(ResidualScheme::PreLn) {
        let g = last(ResidualScheme::PreLn);
        let at = |l: usize| cfg.depths.iter().position(|&x| x == l).map(|i| g[i]);
        let ratio = match (at(16), at(4)) {
            (Some(a), Some(b)) => Some(a / b),
            _ => None,
        };
        claims.add(
            "pre-ln-last-layer-falls",
            "At init, Pre-LN's gradient of W^{2,L} falls like 1/√L",
            "Xiong et al. 2020, Theorem 1 (Pre-LN: O(d√(ln d / L))) and Fig. 3d; PAPERS.md §6 target 5",
            "‖∂L/∂W^{2,16}‖ / ‖∂L/∂W^{2,4}‖ in [0.35, 0.65] (1/√4 = 0.5; seed means; needs L = 4 and 16 in the grid)",
            [("depths", json!(cfg.depths)), ("grad_norm", json!(g)), ("ratio_16_over_4", json!(ratio))],
            ratio.is_some_and(|r| (0.35..=0.65).contains(&r)),
        );
    }
    let rises = |p: &[f64]| p[p.len() - 1] / p[0];
    let spread = |p: &[f64]| {
        let m = mean(p);
        p.iter().map(|x| (x / m - 1.0).abs()).fold(0.0, f64::max)
    };
    for (name, dec) in [("decoder", true), ("encoder", false)] {
        if has(ResidualScheme::PostLn) {
            let p = side(ResidualScheme::PostLn, dec);
            claims.add(
                &format!("post-ln-profile-rises-{name}"),
                &format!("At init, Post-LN's W² gradient grows toward the output across the {name}'s layers"),
                "Xiong et al. 2020, Fig. 3a and §3 (largest near the output); PAPERS.md §6 target 6",
                &format!("layer {n} / layer 1 > 2 in the {n}-layer {name} (seed means)", n = cfg.profile_layers),
                [("profile", json!(p)), ("top_over_bottom", json!(rises(&p)))],
                rises(&p) > 2.0,
            );
        }
        if has(ResidualScheme::PreLn) {
            let p = side(ResidualScheme::PreLn, dec);
            claims.add(
                &format!("pre-ln-profile-flat-{name}"),
                &format!("At init, Pre-LN's W² gradient is about the same in every {name} layer"),
                "Xiong et al. 2020, Fig. 3c; PAPERS.md §6 target 6",
                "every layer within ±30 % of the layers' mean (seed means)",
                [("profile", json!(p)), ("max_relative_deviation", json!(spread(&p)))],
                spread(&p) <= 0.3,
            );
        }
    }
    Ok(claims)
}
