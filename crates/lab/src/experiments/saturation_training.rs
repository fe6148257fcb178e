//! `saturation-training` (Merrill et al. 2021, §5 and `finetune_trans.get_saturation`,
//! `sat.pdf`; PAPERS.md §1.3, §6 target 11): as training grows the norm, the network
//! approaches its saturated version. Along the training of char LMs (Post-LN and branch-LN,
//! AdamW lr 1e-2, wd 0, constant), the saturation similarity
//! sat = mean over tokens of cos(f(x; θ)_t, f(x; 1000θ)_t) of the final representation (and of
//! every layer) on fixed validation windows, in f64.
//!
//! Claim: sat < 0.6 at initialization and ≥ 0.95 at the end of the run (the full preset trains
//! one epoch, the paper's horizon), for every scheme and seed.

use saturn_layers::{DecoderLm, ResidualScheme};
use saturn_saturation::{SATURATION_SCALE, copy_parameters, saturation_similarity, to_f64};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::char_lm::{
    LmData, adamw, constant_lr, epoch_steps, lm_task, new_lm, probe_batch, run_label,
};
use super::data::CharCorpus;
use super::lm_baseline::ModelShape;
use crate::config::{Preset, resolve};
use crate::error::Result;
use crate::plot::{Chart, Series, line_chart};
use crate::summary::Claims;
use crate::train::train;

/// The config of `saturation-training`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaturationTrainingConfig {
    pub model: ModelShape,
    pub data: LmData,
    pub steps: usize,
    pub schemes: Vec<ResidualScheme>,
    /// AdamW, constant lr, no weight decay.
    pub lr: f64,
    /// Measure sat every this many steps (and at step 0 and the end).
    pub probe_every: usize,
    /// Validation windows the similarity is averaged over.
    pub probe_windows: usize,
    /// The scale of the saturated network ("infinity").
    pub c: f64,
}

impl SaturationTrainingConfig {
    /// quick: d 64, 2 layers, 600 steps of 8 × 64 characters (≈ 0.3 epoch); full: d 128,
    /// 4 layers, one epoch of 16 × 128.
    pub fn preset(preset: Preset) -> Self {
        let (d, layers, batch, seq) = match preset {
            Preset::Quick => (64, 2, 8, 64),
            Preset::Full => (128, 4, 16, 128),
        };
        let steps = match preset {
            Preset::Quick => 600,
            Preset::Full => epoch_steps(batch, seq),
        };
        SaturationTrainingConfig {
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
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::BranchLn],
            lr: 1e-2,
            probe_every: (steps / 20).max(1),
            probe_windows: 16,
            c: SATURATION_SCALE,
        }
    }
}

struct RunResult {
    label: String,
    /// (step, sat of the output).
    sat: Vec<(f64, f64)>,
    /// Per-layer sat at init and at the end.
    layers_init: Vec<f64>,
    layers_end: Vec<f64>,
    diverged_at_step: Option<usize>,
}

/// Trains each scheme and seed, probing sat along the way.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(SaturationTrainingConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    ctx.dir.write_toml("config.toml", &cfg)?;
    let corpus = CharCorpus::tiny_shakespeare()?;
    let mut results = Vec::new();
    for &scheme in &cfg.schemes {
        for &seed in &ctx.seeds {
            let label = run_label(scheme, seed);
            let model = new_lm(&cfg.model, scheme, &corpus, cfg.data.seq_len, seed)?;
            let twin: DecoderLm<f64> = to_f64(&model)?;
            let task = lm_task(&corpus, &cfg.data, seed);
            let batch = probe_batch(&task, cfg.probe_windows)?;
            let train_cfg = constant_lr(cfg.steps, adamw(0.0), cfg.lr, cfg.probe_every);
            let mut sat = Vec::new();
            let mut layers = Vec::new();
            let out = train(
                &model,
                &task,
                &train_cfg,
                &ctx.dir.sub(&label)?,
                ctx.resume,
                &label,
                &mut |step, m| {
                    copy_parameters(m, &twin)?;
                    let s = saturation_similarity(&twin, &batch, cfg.c)?;
                    sat.push((step as f64, s.output));
                    let mut row = vec![("sat".to_string(), s.output)];
                    row.extend(s.layers.iter().enumerate().map(|(i, v)| (format!("sat_h{i}"), *v)));
                    layers.push(s.layers);
                    Ok(row)
                },
            )?;
            results.push(RunResult {
                label,
                sat,
                layers_init: layers.first().cloned().unwrap_or_default(),
                layers_end: layers.last().cloned().unwrap_or_default(),
                diverged_at_step: out.diverged_at_step,
            });
        }
    }
    let series: Vec<Series> =
        results.iter().map(|r| Series::new(r.label.clone(), r.sat.clone())).collect();
    let title = format!("saturation along training: cos(f(x; θ), f(x; {}θ))", cfg.c);
    line_chart(
        &ctx.dir,
        "saturation",
        &Chart {
            title: &title,
            x_label: "step",
            y_label: "mean token cosine",
            log_x: false,
            log_y: false,
        },
        &series,
    )?;
    let mut per_layer = Vec::new();
    for r in &results {
        let pts = |v: &[f64]| v.iter().enumerate().map(|(i, c)| (i as f64, *c)).collect();
        per_layer.push(Series::new(format!("{} init", r.label), pts(&r.layers_init)));
        per_layer.push(Series::new(format!("{} end", r.label), pts(&r.layers_end)));
    }
    let chart = Chart {
        title: "saturation by layer (h_ℓ: input of layer ℓ; last: final layer output)",
        x_label: "representation h_ℓ",
        y_label: "mean token cosine",
        log_x: false,
        log_y: false,
    };
    line_chart(&ctx.dir, "saturation_by_layer", &chart, &per_layer)?;

    let first = |r: &RunResult| r.sat.first().map_or(f64::NAN, |x| x.1);
    let last = |r: &RunResult| r.sat.last().map_or(f64::NAN, |x| x.1);
    let per = |f: &dyn Fn(&RunResult) -> serde_json::Value| {
        serde_json::Value::Object(results.iter().map(|r| (r.label.clone(), f(r))).collect())
    };
    let mut claims = Claims::default();
    claims.add(
        "saturation-rises-during-training",
        "Training drives the LM towards its saturated network: cos(f(x; θ), f(x; 1000θ)) rises from < 0.6 at init to ≥ 0.95",
        "Merrill et al. 2021, §5 (sat.pdf: ≈ 1.0 after one epoch); PAPERS.md §6 target 11",
        &format!("every scheme and seed: sat at step 0 < 0.6 and sat after {} steps ≥ 0.95", cfg.steps),
        [
            ("sat_init", per(&|r| json!(first(r)))),
            ("sat_end", per(&|r| json!(last(r)))),
            ("sat_by_layer_end", per(&|r| json!(r.layers_end))),
            ("diverged_at_step", per(&|r| json!(r.diverged_at_step))),
            ("steps", json!(cfg.steps)),
            ("epochs", json!(cfg.steps as f64 / epoch_steps(cfg.data.batch_size, cfg.data.seq_len) as f64)),
        ],
        !results.is_empty() && results.iter().all(|r| r.diverged_at_step.is_none() && first(r) < 0.6 && last(r) >= 0.95),
    );
    Ok(claims)
}
