//! `warmup` (Xiong et al. 2020, §3.3 and Fig. 2; docs/REFERENCES.md#xiong-experiments,
//! docs/REFERENCES.md#target-7): translation with Adam (β = (0.9, 0.98)) at a peak learning rate of
//! 10⁻³ (Fig. 2's larger lr_max) — Post-LN with a linear warmup (the paper's 4,000 steps at full),
//! Post-LN without, and Pre-LN without — all else equal (same steps, same constant rate after the
//! warmup, same batches), for every seed of the run (1 at quick, 3 at full).
//!
//! Claims, each on per-seed paired ratios (the three arms of a seed share the init seed and the
//! batches), judged by the 95 % t interval of their mean (one seed at quick: the point value):
//!
//! - `post-ln-needs-warmup`: final validation loss of Post-LN without warmup / with warmup
//!   > 1.10 (ours: [`NEEDS_WARMUP_REASON`]);
//! - `pre-ln-needs-no-warmup`: Pre-LN without warmup / Post-LN with warmup < 1.02 (ours:
//!   [`NO_WARMUP_REASON`]).
//!
//! A run that diverges (a non-finite loss, or a validation loss above ln V and its own step-0
//! loss from half-way on: the training loop's rule) is scored as ln V, the loss of the uniform
//! prediction ([`scored_loss`]): the ratio stays defined and never rewards the diverged arm.
//! Both claims are gated on the comparison arm, Post-LN with warmup, having learned: its final
//! validation loss ≤ the target unigram entropy − [`LEARNED_MARGIN`] in every seed (not on the
//! no-warmup arms: their not learning is what the claims are about). A sweep in which nothing
//! learns (every lr 0) is therefore inconclusive, never a pass.
//!
//! `schemes` names the warmup-sensitive scheme and the warmup-free one (Post-LN, Pre-LN); the
//! sabotage tests swap them.

use saturn_layers::{Module, ResidualScheme, Seq2Seq};
use saturn_optim::{AdamConfig, Decay, OptimizerConfig, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, Evidence, Gate, LEARNED_MARGIN, LEARNED_MARGIN_REASON, Rule, Threshold};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::run_dir::RunDir;
use crate::summary::Claims;
use crate::tasks::aggregate::{mean, mean_curve};
use crate::tasks::scheme_label::label;
use crate::tasks::scored_loss::{SCORE, scored_loss};
use crate::tasks::translation::{Seq2SeqShape, TranslationTask};
use crate::tasks::translation_data::TranslationData;
use crate::train::{TrainConfig, train};

/// The config of `warmup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    pub model: Seq2SeqShape,
    /// Encoder and decoder layers.
    pub layers: usize,
    pub batch_size: usize,
    /// Validation loss on the first this many validation pairs.
    pub valid_pairs: usize,
    pub steps: usize,
    pub peak_lr: f64,
    pub betas: [f64; 2],
    /// The warmup of the "with warmup" run (linear from `warmup_init_lr`).
    pub warmup_steps: u64,
    pub warmup_init_lr: f64,
    pub eval_every: usize,
    pub vocab: usize,
    pub max_len: usize,
    /// The scheme trained with and without warmup (Post-LN) and the one trained without only
    /// (Pre-LN).
    #[serde(default = "default_schemes")]
    pub schemes: [ResidualScheme; 2],
}

fn default_schemes() -> [ResidualScheme; 2] {
    [ResidualScheme::PostLn, ResidualScheme::PreLn]
}

/// Why `post-ln-needs-warmup`'s threshold is 1.10.
pub const NEEDS_WARMUP_REASON: &str = "Xiong et al. Fig. 2 (docs/REFERENCES.md#xiong-experiments) \
    shows Post-LN without warmup far behind the 4000-step warmup in validation loss and BLEU (BLEU \
    ≈ 8.45 against ≈ 35, unchecked: the figure cannot be read here), a gap no tolerance near 1 \
    would miss; 10 % of the final loss is our 'clearly worse' (target 7), several times the \
    ≈ 1 % seed-to-seed spread of paired final losses at these sizes";

/// Why `pre-ln-needs-no-warmup`'s threshold is 1.02.
pub const NO_WARMUP_REASON: &str = "Xiong et al. §3.3 say Pre-LN without warmup reaches \
    'comparable' BLEU (no number); Table 1 of Liu et al. puts trained 6L Pre-LN within 0.14 BLEU \
    (0.4 %) of Post-LN on IWSLT. 2 % of the final loss (target 7) allows that gap and the seed \
    noise while excluding the ≥ 10 % of a model that needs the warmup it lacks";

impl ExperimentConfig for WarmupConfig {
    /// quick: a 6-6 model (Xiong's depth) at d = 32, 200 steps of 16 pairs with a 20-step
    /// warmup (10 %, within the 4–13 % of the paper's runs; ≈ 2 minutes on a loaded machine): a
    /// smoke run, every arm barely below the unigram entropy, too short for Post-LN without
    /// warmup to fall behind — `post-ln-needs-warmup` fails there (ratio 0.994 at seed 0, 0.981
    /// at seed 4243) and `pre-ln-needs-no-warmup` holds (0.952, 0.941); a peak lr of 5·10⁻³
    /// leaves both Post-LN arms on the unigram plateau (inconclusive), so the quick lr stays the
    /// full one. full: d = 64, 12,000 steps of 32 pairs with the paper's 4,000-step warmup (9
    /// cells of ≈ 32 core-minutes, ≈ 4.7 core-hours).
    fn preset(preset: Preset) -> Self {
        let (d, steps, warmup, batch, eval_every, valid) = match preset {
            Preset::Quick => (32, 200, 20, 16, 50, 128),
            Preset::Full => (64, 12_000, 4_000, 32, 500, 512),
        };
        WarmupConfig {
            model: Seq2SeqShape::of_width(d),
            layers: 6,
            batch_size: batch,
            valid_pairs: valid,
            steps,
            peak_lr: 1e-3,
            betas: [0.9, 0.98],
            warmup_steps: warmup,
            warmup_init_lr: 1e-7,
            eval_every,
            vocab: 2000,
            max_len: 64,
            schemes: default_schemes(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.layers == 0 || self.warmup_steps == 0 || self.warmup_steps as usize >= self.steps {
            return Err(LabError::Config("need layers and 0 < warmup_steps < steps".into()));
        }
        Ok(())
    }
}

impl WarmupConfig {
    fn train(&self, warmup_steps: u64) -> Result<TrainConfig> {
        let optimizer =
            OptimizerConfig::Adam(AdamConfig { betas: self.betas, ..AdamConfig::default() });
        Ok(TrainConfig {
            steps: self.steps,
            optimizer,
            schedule: Schedule::new(
                self.peak_lr,
                warmup_steps,
                self.warmup_init_lr,
                Decay::Constant,
            )?,
            clip: None,
            eval_every: self.eval_every,
            log_every: (self.steps / 50).max(1),
            checkpoint_every: (self.steps / 10).max(1),
        })
    }
}

/// An arm: (name, scheme, warmup?).
type Arm = (&'static str, ResidualScheme, bool);

/// The three arms of `schemes` = [post, pre]: post with and without warmup, pre without.
fn arms([post, pre]: [ResidualScheme; 2]) -> [Arm; 3] {
    [("post-warmup", post, true), ("post-no-warmup", post, false), ("pre-no-warmup", pre, false)]
}

/// One training run: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    parameters: usize,
    final_valid_loss: Option<f64>,
    diverged_at_step: Option<usize>,
    /// (step, validation loss) of every evaluation.
    valid_loss: Vec<(f64, f64)>,
}

/// Trains every arm × seed, draws the mean validation curves, checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: WarmupConfig = ctx.open()?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    // one cell per training run: arm × seed, checkpointed in its cell
    let minutes = cfg.model.training_minutes(cfg.layers, cfg.steps, cfg.batch_size);
    let cells = ctx
        .seeds
        .iter()
        .flat_map(|&seed| {
            arms(cfg.schemes).map(|arm| Cell::new(seed, format!("{}-seed{seed}", arm.0), arm))
        })
        .map(|cell| cell.minutes(minutes))
        .collect();
    let runs = ctx.cells(&cfg, cells, |cell, dir| train_arm(ctx, &cfg, &data, cell, dir))?;
    write_final_table(ctx, &runs)?;
    draw_valid_loss(ctx, &cfg, &runs)?;
    Ok(claims(&cfg, &data, &runs, &ctx.seeds))
}

/// Trains one arm with one seed in its cell directory `dir`.
fn train_arm(
    ctx: &ExperimentCtx,
    cfg: &WarmupConfig,
    data: &TranslationData,
    cell: &Cell<Arm>,
    dir: &RunDir,
) -> Result<Run> {
    let (_, scheme, warm) = cell.spec;
    let task = TranslationTask::new(data, cfg.batch_size, cfg.valid_pairs, cell.seed)?;
    let shape = cfg.model.config(scheme, cfg.layers, cfg.layers, data);
    let model = Seq2Seq::<f32>::new(shape, cell.seed)?;
    let tc = cfg.train(if warm { cfg.warmup_steps } else { 0 })?;
    let out = train(&model, &task, &tc, dir, ctx.resume, &cell.label, &mut |_, _| Ok(Vec::new()))?;
    Ok(Run {
        parameters: model.num_parameters(),
        final_valid_loss: out.final_valid_loss,
        diverged_at_step: out.diverged_at_step,
        valid_loss: out.metrics.series("valid_loss"),
    })
}

/// `final.csv`: one row per run.
fn write_final_table(ctx: &ExperimentCtx, runs: &[(Cell<Arm>, Run)]) -> Result<()> {
    let table: Vec<Vec<String>> = runs
        .iter()
        .map(|(cell, run)| {
            vec![
                cell.spec.0.to_string(),
                cell.seed.to_string(),
                run.parameters.to_string(),
                run.final_valid_loss.map_or(String::new(), |v| v.to_string()),
                run.diverged_at_step.map_or(String::new(), |s| s.to_string()),
            ]
        })
        .collect();
    ctx.dir.write_csv(
        "final.csv",
        &["arm", "seed", "parameters", "final_valid_loss", "diverged_at_step"],
        &table,
    )
}

/// `valid_loss`: each arm's validation loss, the mean over its seeds.
fn draw_valid_loss(
    ctx: &ExperimentCtx,
    cfg: &WarmupConfig,
    runs: &[(Cell<Arm>, Run)],
) -> Result<()> {
    let series: Vec<Series> = arms(cfg.schemes)
        .iter()
        .map(|&(arm, scheme, warm)| {
            let curves: Vec<Vec<(f64, f64)>> = runs
                .iter()
                .filter(|(cell, _)| cell.spec.0 == arm)
                .map(|(_, run)| run.valid_loss.clone())
                .collect();
            let legend = format!(
                "{} {} ({})",
                label(scheme),
                if warm { format!("warmup {}", cfg.warmup_steps) } else { "no warmup".into() },
                crate::plot::seeds_legend(curves.len())
            );
            Series::new(legend, mean_curve(&curves))
        })
        .collect();
    line_chart(
        &ctx.dir,
        "valid_loss",
        &Chart::new("warmup: validation loss, Adam at peak lr 1e-3")
            .x("step")
            .y("validation loss (nats / token)"),
        &series,
    )
}

/// The two claims, on per-seed ratios of scored losses ([`scored_loss`]), gated on the
/// compared arms having learned.
fn claims(
    cfg: &WarmupConfig,
    data: &TranslationData,
    runs: &[(Cell<Arm>, Run)],
    seeds: &[u64],
) -> Claims {
    let ln_v = (data.vocab as f64).ln();
    let unigram = data.tgt_unigram_entropy;
    let scored = |arm: &str| -> Vec<f64> {
        seeds
            .iter()
            .map(|&seed| {
                runs.iter()
                    .find(|(cell, _)| cell.spec.0 == arm && cell.seed == seed)
                    .map_or(f64::NAN, |(_, r)| {
                        scored_loss(r.final_valid_loss, r.diverged_at_step, ln_v)
                    })
            })
            .collect()
    };
    let (with, without, pre) =
        (scored("post-warmup"), scored("post-no-warmup"), scored("pre-no-warmup"));
    let ratios =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    let runs = json!(
        runs.iter()
            .map(|(cell, r)| json!({
                "arm": cell.spec.0,
                "seed": cell.seed,
                "final_valid_loss": r.final_valid_loss,
                "diverged_at_step": r.diverged_at_step,
            }))
            .collect::<Vec<_>>()
    );
    let learned = |what: &str, losses: &[f64]| {
        Gate::learned(what, losses, "target_unigram_entropy", unigram, LEARNED_MARGIN)
            .with("margin_origin", json!(LEARNED_MARGIN_REASON))
    };
    let post = cfg.schemes[0];
    let protocol = json!({
        "schemes": cfg.schemes.map(|s| s.name()),
        "d_model": cfg.model.d_model,
        "layers": cfg.layers,
        "steps": cfg.steps,
        "batch_pairs": cfg.batch_size,
        "peak_lr": cfg.peak_lr,
        "warmup_steps": cfg.warmup_steps,
        "decay": "constant after the warmup",
        "source_protocol": "Xiong et al. Fig. 2: IWSLT'14 De-En Post-LN, Adam β (0.9, 0.98), lr_max ∈ {5e-4, 1e-3}, warmup ∈ {0, 500, 4000}; here d 64 instead of 512, 12,000 steps at full, lr_max 1e-3, warmup 4000 or 0",
    });
    let mut claims = Claims::default();
    claims.push(
        Claim::builder("post-ln-needs-warmup")
            .statement("Post-LN trained with Adam at lr 1e-3 ends clearly worse without a learning-rate warmup")
            .source("Xiong et al. 2020, §3.3 and Fig. 2; docs/REFERENCES.md#target-7")
            .expected("per seed (same init, same batches): final validation loss of Post-LN without warmup / with warmup > 1.10 (a diverged run scored ln V)")
            .threshold(Threshold::ours(NEEDS_WARMUP_REASON))
            .measured("protocol", protocol.clone())
            .measured("post_ln_warmup_mean", json!(mean(&with)))
            .measured("post_ln_no_warmup_mean", json!(mean(&without)))
            .measured("uniform_loss_ln_v", json!(ln_v))
            .measured("runs", runs.clone())
            .gate(learned(&format!("{} with warmup (the comparison arm)", label(post)), &with))
            .evidence(Evidence::new(
                format!("{SCORE}: Post-LN without warmup / Post-LN with warmup, paired by seed"),
                seeds,
                ratios(&without, &with),
                Rule::Above(1.10),
            )),
    );
    claims.push(
        Claim::builder("pre-ln-needs-no-warmup")
            .statement("Pre-LN without warmup does as well as Post-LN with warmup")
            .source("Xiong et al. 2020, §3.3 (Pre-LN trained without warmup reaches comparable results); docs/REFERENCES.md#target-7")
            .expected("per seed (same batches): final validation loss of Pre-LN without warmup / Post-LN with warmup < 1.02 (a diverged run scored ln V)")
            .threshold(Threshold::ours(NO_WARMUP_REASON))
            .measured("protocol", protocol)
            .measured("post_ln_warmup_mean", json!(mean(&with)))
            .measured("pre_ln_no_warmup_mean", json!(mean(&pre)))
            .measured("uniform_loss_ln_v", json!(ln_v))
            .measured("runs", runs)
            .gate(learned(&format!("{} with warmup (the comparison arm)", label(post)), &with))
            .evidence(Evidence::new(
                format!("{SCORE}: Pre-LN without warmup / Post-LN with warmup, paired by seed"),
                seeds,
                ratios(&pre, &with),
                Rule::Below(1.02),
            )),
    );
    claims
}
