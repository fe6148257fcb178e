//! `saturation-training` (Merrill et al. 2021, §5 and `finetune_trans.get_saturation`,
//! `sat.pdf`; docs/REFERENCES.md#merrill-experiments, docs/REFERENCES.md#target-11): as training
//! grows the norm, the network approaches its saturated version. Along the training of char LMs
//! (Post-LN and branch-LN; AdamW, wd 0, under the stable recipe — lr 3e-3 warmed up over the
//! first tenth, clipping at 1 — since the reference's constant lr 1e-2 leaves Post-LN on the
//! unigram plateau: `heads`' claim `reference-recipe-leaves-post-ln-untrained`), the saturation similarity
//! sat = mean over tokens of cos(f(x; θ)_t, f(x; 1000θ)_t) of the final representation (and of
//! every layer) on fixed validation windows, in f64.
//!
//! Claim `saturation-rises-during-training`: sat ≥ 0.95 at the end of the run (the full preset
//! trains one epoch, the paper's horizon), for every scheme and seed. Per seed the statistic
//! is the worst scheme's final sat (min over schemes), judged `> 0.95` (95 % t interval over
//! seeds; one seed at quick: its point value). Gates: every run starts away from saturation
//! (sat < 0.6 at step 0), and every LM learned (final validation loss ≤ unigram entropy −
//! [`LEARNED_MARGIN`]): an LM collapsed onto the unigram plateau is trivially equal to its own
//! saturated version, so without this gate the claim would hold for the wrong reason.
//!
//! Cells: one per LM (scheme × seed). The sat curve is kept in the run's metrics, which its
//! checkpoints carry, so a resumed cell has the whole curve.

use saturn_layers::{DecoderLm, ResidualScheme};
use saturn_saturation::{SATURATION_SCALE, copy_parameters, saturation_similarity, to_f64};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::LEARNED_MARGIN;
use crate::claim::{Claim, Evidence, Gate, Rule, Threshold};
use crate::config::Preset;
use crate::error::Result;
use crate::plot::{Chart, Series, line_chart};
use crate::run_dir::RunDir;
use crate::summary::Claims;
use crate::tasks::aggregate::{Worst, worst_per_seed};
use crate::tasks::char_corpus::CharCorpus;
use crate::tasks::char_lm::ModelShape;
use crate::tasks::char_lm::{
    LmData, LmRecipe, epoch_steps, lm_task, new_lm, probe_batch, run_label, training_minutes,
};
use crate::train::train;

/// The config of `saturation-training`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaturationTrainingConfig {
    pub model: ModelShape,
    pub data: LmData,
    pub steps: usize,
    pub schemes: Vec<ResidualScheme>,
    /// How the LMs are trained (a config without it ran the reference's constant lr).
    #[serde(default = "reference_recipe")]
    pub recipe: LmRecipe,
    /// The (peak) learning rate of `recipe`.
    pub lr: f64,
    /// Measure sat every this many steps (and at step 0 and the end).
    pub probe_every: usize,
    /// Validation windows the similarity is averaged over.
    pub probe_windows: usize,
    /// The scale of the saturated network ("infinity").
    pub c: f64,
}

fn reference_recipe() -> LmRecipe {
    LmRecipe::Reference
}

impl ExperimentConfig for SaturationTrainingConfig {
    /// quick: d 64, 2 layers, 600 steps of 8 × 64 characters (≈ 0.3 epoch); full: d 128,
    /// 4 layers, one epoch of 16 × 128.
    fn preset(preset: Preset) -> Self {
        let (d, layers, batch, seq) = match preset {
            Preset::Quick => (64, 2, 8, 64),
            Preset::Full => (128, 4, 16, 128),
        };
        let steps = match preset {
            Preset::Quick => 600,
            Preset::Full => epoch_steps(batch, seq),
        };
        SaturationTrainingConfig {
            model: ModelShape::of_width(d, 4, layers),
            data: LmData { batch_size: batch, seq_len: seq, eval_batches: 4 },
            steps,
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::BranchLn],
            recipe: LmRecipe::Stable,
            lr: 3e-3,
            probe_every: (steps / 20).max(1),
            probe_windows: 16,
            c: SATURATION_SCALE,
        }
    }
}

/// One trained LM's saturation curve: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunResult {
    label: String,
    seed: u64,
    /// (step, sat of the output).
    sat: Vec<(f64, f64)>,
    /// Per-layer sat at init and at the end.
    layers_init: Vec<f64>,
    layers_end: Vec<f64>,
    diverged_at_step: Option<usize>,
    /// NaN when the run recorded none.
    final_valid_loss: f64,
}

/// The per-layer sat (`sat_h0`, `sat_h1`, …) of a metrics row, in layer order.
fn layer_sats(row: &crate::metrics::Row) -> Vec<f64> {
    (0..).map_while(|i| row.values.get(&format!("sat_h{i}")).copied()).collect()
}

/// Trains one LM, probing sat along the way. The curve is read from the run's metrics, not
/// kept by the probe, so that a run resumed from a checkpoint has the whole of it.
fn train_and_probe(
    cfg: &SaturationTrainingConfig,
    corpus: &CharCorpus,
    scheme: ResidualScheme,
    seed: u64,
    dir: &RunDir,
    resume: bool,
    label: &str,
) -> Result<RunResult> {
    let model = new_lm(&cfg.model, scheme, corpus, cfg.data.seq_len, seed)?;
    let twin: DecoderLm<f64> = to_f64(&model)?;
    let task = lm_task(corpus, &cfg.data, seed);
    let batch = probe_batch(&task, cfg.probe_windows)?;
    let train_cfg = cfg.recipe.train_config(cfg.steps, cfg.lr, cfg.probe_every)?;
    let out = train(&model, &task, &train_cfg, dir, resume, label, &mut |_, m| {
        copy_parameters(m, &twin)?;
        let s = saturation_similarity(&twin, &batch, cfg.c)?;
        let mut row = vec![("sat".to_string(), s.output)];
        row.extend(s.layers.iter().enumerate().map(|(i, v)| (format!("sat_h{i}"), *v)));
        Ok(row)
    })?;
    let probed: Vec<&crate::metrics::Row> =
        out.metrics.rows.iter().filter(|r| r.values.contains_key("sat")).collect();
    Ok(RunResult {
        label: label.to_string(),
        seed,
        sat: probed.iter().map(|r| (r.step as f64, r.values["sat"])).collect(),
        layers_init: probed.first().map(|r| layer_sats(r)).unwrap_or_default(),
        layers_end: probed.last().map(|r| layer_sats(r)).unwrap_or_default(),
        diverged_at_step: out.diverged_at_step,
        final_valid_loss: out.final_valid_loss.unwrap_or(f64::NAN),
    })
}

/// Trains each scheme and seed, probing sat along the way.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: SaturationTrainingConfig = ctx.open()?;
    let corpus = CharCorpus::tiny_shakespeare()?;
    // one cell per LM: scheme × seed; the probes (f64, 21 of them) add about a tenth
    let minutes =
        1.1 * training_minutes(&cfg.model, cfg.data.batch_size, cfg.data.seq_len, cfg.steps);
    let mut cells = Vec::new();
    for &scheme in &cfg.schemes {
        for &seed in &ctx.seeds {
            cells.push(Cell::new(seed, run_label(scheme, seed), scheme).minutes(minutes));
        }
    }
    // an LM does not depend on which other schemes run
    let key = SaturationTrainingConfig { schemes: Vec::new(), ..cfg.clone() };
    let results: Vec<RunResult> = ctx
        .cells(&key, cells, |cell, dir| {
            train_and_probe(&cfg, &corpus, cell.spec, cell.seed, dir, ctx.resume, &cell.label)
        })?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    draw_saturation(ctx, &cfg, &results)?;
    Ok(claims(&cfg, &results, corpus.unigram_entropy(), &ctx.seeds))
}

/// `saturation` (sat along training, every LM) and `saturation_by_layer` (each layer's sat at
/// init and at the end).
fn draw_saturation(
    ctx: &ExperimentCtx,
    cfg: &SaturationTrainingConfig,
    results: &[RunResult],
) -> Result<()> {
    let series: Vec<Series> =
        results.iter().map(|r| Series::new(r.label.clone(), r.sat.clone())).collect();
    let title = format!("saturation along training: cos(f(x; θ), f(x; {}θ))", cfg.c);
    line_chart(
        &ctx.dir,
        "saturation",
        &Chart::new(&title).x("step").y("mean token cosine"),
        &series,
    )?;
    let mut per_layer = Vec::new();
    for r in results {
        let pts = |v: &[f64]| v.iter().enumerate().map(|(i, c)| (i as f64, *c)).collect();
        per_layer.push(Series::new(format!("{} init", r.label), pts(&r.layers_init)));
        per_layer.push(Series::new(format!("{} end", r.label), pts(&r.layers_end)));
    }
    let chart = Chart::new("saturation by layer (h_ℓ: input of layer ℓ; last: final layer output)")
        .x("representation h_ℓ")
        .y("mean token cosine");
    line_chart(&ctx.dir, "saturation_by_layer", &chart, &per_layer)
}

/// `saturation-rises-during-training`, gated on every LM starting away from saturation and
/// learning (its loss below the unigram `entropy`).
fn claims(
    cfg: &SaturationTrainingConfig,
    results: &[RunResult],
    entropy: f64,
    seeds: &[u64],
) -> Claims {
    let first = |r: &RunResult| r.sat.first().map_or(f64::NAN, |x| x.1);
    let last = |r: &RunResult| r.sat.last().map_or(f64::NAN, |x| x.1);
    let per = |f: &dyn Fn(&RunResult) -> serde_json::Value| {
        serde_json::Value::Object(results.iter().map(|r| (r.label.clone(), f(r))).collect())
    };
    // per seed, the worst scheme: the smallest final sat (undefined when any is)
    let sat_end = worst_per_seed(results, seeds, |r| r.seed, last, Worst::Min);
    let losses: Vec<f64> = results.iter().map(|r| r.final_valid_loss).collect();
    let starts_low = !results.is_empty() && results.iter().all(|r| first(r) < 0.6);
    let mut claims = Claims::default();
    claims.push(
        Claim::builder("saturation-rises-during-training")
            .statement("Training drives the LM towards its saturated network: cos(f(x; θ), f(x; 1000θ)) rises from < 0.6 at init to ≥ 0.95")
            .source("Merrill et al. 2021, §5 (sat.pdf: ≈ 1.0 after one epoch); docs/REFERENCES.md#target-11")
            .expected(format!(
                "per seed, the smallest over the schemes of sat after {} steps > 0.95; gates: sat at step 0 < 0.6 in every run (it starts away from saturation), and every LM learned (final validation loss ≤ unigram entropy − {LEARNED_MARGIN} nats: a collapsed LM is trivially its own saturated version)",
                cfg.steps
            ))
            .threshold(Threshold::as_before())
            .measured("sat_init", per(&|r| json!(first(r))))
            .measured("sat_end", per(&|r| json!(last(r))))
            .measured("sat_by_layer_end", per(&|r| json!(r.layers_end)))
            .measured("diverged_at_step", per(&|r| json!(r.diverged_at_step)))
            .measured("steps", json!(cfg.steps))
            .measured(
                "epochs",
                json!(cfg.steps as f64 / epoch_steps(cfg.data.batch_size, cfg.data.seq_len) as f64),
            )
            .gate(
                Gate::new("every LM starts away from its saturated network: sat at step 0 < 0.6", starts_low)
                    .with("sat_init", per(&|r| json!(first(r)))),
            )
            .gate(Gate::learned("every LM", &losses, "unigram_entropy", entropy, LEARNED_MARGIN))
            .evidence(Evidence::new(
                "smallest over schemes of sat at the end of training",
                seeds,
                sat_end,
                Rule::Above(0.95),
            )),
    );
    claims
}
