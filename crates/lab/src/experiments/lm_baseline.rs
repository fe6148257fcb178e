//! `lm-baseline`: a character-level LM on tiny-shakespeare, Post-LN and Pre-LN, 2 layers — the
//! lab's first experiment, proving the training loop end to end.
//!
//! Claim `below-unigram-entropy`: the validation loss falls below the unigram entropy of the
//! corpus (the best loss without context), for every residual scheme and seed. Per seed the
//! statistic is the worst scheme's excess, max over schemes of (final validation loss −
//! unigram entropy), judged `< 0` (95 % t interval over seeds; one seed at quick: its point
//! value). A diverged run keeps its (high) loss; a run without a loss is undefined, never a
//! pass. No gate: the claim is itself that the model learned. Perplexity e^loss is reported.
//!
//! Cells: one per LM (scheme × seed), each training in its own directory with its checkpoints.

use saturn_layers::{Activation, DecoderLm, LmConfig, ResidualScheme};
use saturn_optim::{AdamConfig, Decay, OptimizerConfig, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, Evidence, Rule, Threshold};
use crate::config::Preset;
use crate::error::Result;
use crate::plot::{Chart, Series, line_chart};
use crate::run_dir::RunDir;
use crate::summary::Claims;
use crate::tasks::aggregate::{Worst, worst_per_seed};
use crate::tasks::char_corpus::CharCorpus;
use crate::tasks::char_lm::{ModelShape, lm_config, training_minutes};
use crate::train::{LmTask, TrainConfig, train};

/// The config of `lm-baseline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmBaselineConfig {
    pub model: ModelShape,
    pub schemes: Vec<ResidualScheme>,
    pub batch_size: usize,
    pub seq_len: usize,
    pub eval_batches: usize,
    pub train: TrainConfig,
}

impl ExperimentConfig for LmBaselineConfig {
    /// The preset sizes: quick trains a small model for a few hundred steps (about a minute on
    /// 2 cores); full trains a larger one for 5,000 steps.
    fn preset(preset: Preset) -> Self {
        let (d, ff, steps, batch, seq) = match preset {
            Preset::Quick => (64, 256, 300, 16, 64),
            Preset::Full => (128, 512, 5000, 32, 128),
        };
        LmBaselineConfig {
            model: ModelShape {
                d_model: d,
                n_heads: 4,
                d_ff: ff,
                n_layers: 2,
                act: Activation::Relu,
                init: Default::default(),
            },
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::PreLn],
            batch_size: batch,
            seq_len: seq,
            eval_batches: 8,
            train: TrainConfig {
                steps,
                optimizer: OptimizerConfig::Adam(AdamConfig {
                    betas: [0.9, 0.98],
                    ..AdamConfig::default()
                }),
                schedule: Schedule::new(3e-3, (steps / 10) as u64, 0.0, Decay::Constant)
                    .expect("valid schedule"),
                clip: Some(1.0),
                eval_every: (steps / 10).max(1),
                log_every: (steps / 50).max(1),
                checkpoint_every: (steps / 5).max(1),
            },
        }
    }

    fn validate(&self) -> Result<()> {
        self.train.validate()?;
        Ok(())
    }
}

impl LmBaselineConfig {
    /// The LM config of one scheme.
    pub fn lm(&self, scheme: ResidualScheme, vocab: usize) -> LmConfig {
        lm_config(&self.model, scheme, vocab, self.seq_len)
    }
}

/// One trained LM: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LmRun {
    label: String,
    seed: u64,
    /// (step, validation loss) along training.
    valid_loss: Vec<(f64, f64)>,
    /// NaN when the run recorded none.
    final_valid_loss: f64,
    diverged_at_step: Option<usize>,
}

/// Trains each scheme with each seed and checks the claim.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: LmBaselineConfig = ctx.open()?;
    let corpus = CharCorpus::tiny_shakespeare()?;
    let entropy = corpus.unigram_entropy();
    // one cell per LM: scheme × seed
    let minutes = training_minutes(&cfg.model, cfg.batch_size, cfg.seq_len, cfg.train.steps);
    let mut cells = Vec::new();
    for &scheme in &cfg.schemes {
        for &seed in &ctx.seeds {
            let label = format!("{}-seed{seed}", scheme.name());
            cells.push(Cell::new(seed, label, scheme).minutes(minutes));
        }
    }
    // an LM does not depend on which other schemes run
    let key = LmBaselineConfig { schemes: Vec::new(), ..cfg.clone() };
    let runs: Vec<LmRun> = ctx
        .cells(&key, cells, |cell, dir| train_lm(ctx, &cfg, &corpus, cell, dir))?
        .into_iter()
        .map(|(_, run)| run)
        .collect();
    draw_valid_loss(ctx, &runs, entropy)?;
    Ok(claims(&runs, entropy, &ctx.seeds))
}

/// Trains one scheme's LM with one seed in its cell directory `dir`.
fn train_lm(
    ctx: &ExperimentCtx,
    cfg: &LmBaselineConfig,
    corpus: &CharCorpus,
    cell: &Cell<ResidualScheme>,
    dir: &RunDir,
) -> Result<LmRun> {
    let seed = cell.seed;
    let model = DecoderLm::<f32>::new(cfg.lm(cell.spec, corpus.vocab), seed)?;
    let task = LmTask {
        train: &corpus.train,
        valid: &corpus.valid,
        vocab: corpus.vocab,
        batch_size: cfg.batch_size,
        seq_len: cfg.seq_len,
        eval_batches: cfg.eval_batches,
        seed,
    };
    let out =
        train(&model, &task, &cfg.train, dir, ctx.resume, &cell.label, &mut |_, _| Ok(Vec::new()))?;
    Ok(LmRun {
        label: cell.label.clone(),
        seed,
        valid_loss: out.metrics.series("valid_loss"),
        final_valid_loss: out.final_valid_loss.unwrap_or(f64::NAN),
        diverged_at_step: out.diverged_at_step,
    })
}

/// `valid_loss`: every LM's validation loss beside the unigram entropy.
fn draw_valid_loss(ctx: &ExperimentCtx, runs: &[LmRun], entropy: f64) -> Result<()> {
    let curves: Vec<Series> =
        runs.iter().map(|r| Series::new(r.label.clone(), r.valid_loss.clone())).collect();
    let mut with_entropy = curves.clone();
    if let (Some(first), Some(last)) = (
        curves.iter().flat_map(|c| c.points.first()).next(),
        curves.iter().flat_map(|c| c.points.last()).last(),
    ) {
        with_entropy
            .push(Series::new("unigram entropy", vec![(first.0, entropy), (last.0, entropy)]));
    }
    let chart = Chart::new("lm-baseline: validation loss").x("step").y("loss (nats / char)");
    line_chart(&ctx.dir, "valid_loss", &chart, &with_entropy)
}

/// `below-unigram-entropy`: per seed, the worst scheme's excess over the entropy < 0.
fn claims(runs: &[LmRun], entropy: f64, seeds: &[u64]) -> Claims {
    let mut claims = Claims::default();
    let per_run: serde_json::Map<String, serde_json::Value> = runs
        .iter()
        .map(|r| {
            let (v, d) = (r.final_valid_loss, r.diverged_at_step);
            (
                r.label.clone(),
                json!({"valid_loss": v, "perplexity": v.exp(), "diverged_at_step": d}),
            )
        })
        .collect();
    // per seed, the worst scheme: the largest final loss's excess over the entropy
    let excess: Vec<f64> =
        worst_per_seed(runs, seeds, |r| r.seed, |r| r.final_valid_loss, Worst::Max)
            .into_iter()
            .map(|worst| worst - entropy)
            .collect();
    claims.push(
        Claim::builder("below-unigram-entropy")
            .statement("A 2-layer character LM learns context: its validation loss falls below the corpus's unigram entropy, for every scheme and seed")
            .source("sanity baseline (the lab's first experiment): the unigram entropy is the loss of the best model without context")
            .expected("per seed, the largest over the schemes of (final validation loss − unigram entropy) < 0 nats")
            .threshold(Threshold::as_before())
            .measured("unigram_entropy", json!(entropy))
            .measured("runs", serde_json::Value::Object(per_run))
            .evidence(Evidence::new(
                "largest over schemes of final validation loss − unigram entropy (nats)",
                seeds,
                excess,
                Rule::Below(0.0),
            )),
    );
    claims
}
