//! `heads` (Merrill et al. 2021, §5 and the top-level `saturate.py`,
//! `attn/*/# positions attended.pdf`; PAPERS.md §1.1, §6 target 12): after training, run a
//! char LM at 1000θ and count, for every head and query, the keys with weight > 1e-5; classify
//! each head (hard, averaging, sink, mixed: `saturn_saturation::HEAD_THRESHOLDS`) and draw the
//! histogram of the per-head mean number of positions attended.
//!
//! Claims, for every trained LM: ≥ 70 % of its heads are hard or averaging, and both classes are
//! non-empty (the paper's histograms are bimodal: argmax heads and mean heads).

use saturn_layers::ResidualScheme;
use saturn_saturation::{
    HEAD_THRESHOLDS, HeadClass, HeadStats, SATURATION_SCALE, analyze_heads, class_counts, to_f64,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::char_lm::{LmData, adamw, constant_lr, lm_task, new_lm, probe_batch, run_label};
use super::data::CharCorpus;
use super::lm_baseline::ModelShape;
use crate::config::{Preset, resolve};
use crate::error::Result;
use crate::plot::{Chart, HeatMap, Palette, heat_map, histogram};
use crate::run_dir::RunDir;
use crate::summary::Claims;
use crate::train::train;

/// The config of `heads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsConfig {
    pub model: ModelShape,
    pub data: LmData,
    pub steps: usize,
    pub schemes: Vec<ResidualScheme>,
    /// AdamW, constant lr, no weight decay.
    pub lr: f64,
    /// Validation windows the heads are analysed on.
    pub probe_windows: usize,
    /// The scale of "under saturation".
    pub c: f64,
}

impl HeadsConfig {
    /// quick: 4 layers × 4 heads, d 64, 600 steps of 8 × 64 characters; full: 6 layers × 4
    /// heads, d 64, 5,000 steps of 16 × 64 (≈ 5 epochs).
    pub fn preset(preset: Preset) -> Self {
        let (d, heads, layers, steps, batch, seq) = match preset {
            Preset::Quick => (64, 4, 4, 600, 8, 64),
            Preset::Full => (64, 4, 6, 5_000, 16, 64),
        };
        HeadsConfig {
            model: ModelShape {
                d_model: d,
                n_heads: heads,
                d_ff: 4 * d,
                n_layers: layers,
                act: saturn_layers::Activation::Relu,
            },
            data: LmData { batch_size: batch, seq_len: seq, eval_batches: 4 },
            steps,
            schemes: vec![ResidualScheme::PostLn, ResidualScheme::BranchLn],
            lr: 1e-2,
            probe_windows: 16,
            c: SATURATION_SCALE,
        }
    }
}

/// Writes `heads.csv` (one row per head) for `stats` of the runs.
pub fn write_head_table(dir: &RunDir, name: &str, runs: &[(String, Vec<HeadStats>)]) -> Result<()> {
    let header = [
        "run",
        "layer",
        "head",
        "class",
        "mean_count",
        "std_count",
        "split_fraction",
        "mean_prefix",
        "prefix_fraction",
        "entropy",
        "first_token_mass",
        "queries",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|(run, stats)| {
            stats.iter().map(move |s| {
                vec![
                    run.clone(),
                    s.layer.clone(),
                    s.head.to_string(),
                    s.class.name().into(),
                    s.mean_count.to_string(),
                    s.std_count.to_string(),
                    s.split_fraction.to_string(),
                    s.mean_prefix.to_string(),
                    s.prefix_fraction.to_string(),
                    s.entropy.to_string(),
                    s.first_token_mass.to_string(),
                    s.queries.to_string(),
                ]
            })
        })
        .collect();
    dir.write_csv(name, &header, &rows)
}

/// The class table of one model as heat-map cells: one row per layer, one column per head,
/// the class's index in [`HeadClass::ALL`].
pub fn class_cells(stats: &[HeadStats]) -> Vec<Vec<f64>> {
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for s in stats {
        let v = HeadClass::ALL.iter().position(|c| *c == s.class).unwrap_or(0) as f64;
        match rows.iter_mut().find(|(l, _)| *l == s.layer) {
            Some((_, r)) => r.push(v),
            None => rows.push((s.layer.clone(), vec![v])),
        }
    }
    rows.into_iter().map(|(_, r)| r).collect()
}

/// The names of [`HeadClass::ALL`], for heat-map legends.
pub const CLASS_NAMES: [&str; 4] = ["averaging", "sink", "hard", "mixed"];

/// The class counts as a JSON object.
pub fn class_json(stats: &[HeadStats]) -> serde_json::Value {
    serde_json::Value::Object(
        class_counts(stats).into_iter().map(|(c, n)| (c.name().to_string(), json!(n))).collect(),
    )
}

/// Trains each LM, classifies its heads under saturation, checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(HeadsConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    ctx.dir.write_toml("config.toml", &cfg)?;
    let corpus = CharCorpus::tiny_shakespeare()?;
    let mut runs: Vec<(String, Vec<HeadStats>)> = Vec::new();
    let mut diverged = Vec::new();
    for &scheme in &cfg.schemes {
        for &seed in &ctx.seeds {
            let label = run_label(scheme, seed);
            let model = new_lm(&cfg.model, scheme, &corpus, cfg.data.seq_len, seed)?;
            let task = lm_task(&corpus, &cfg.data, seed);
            let train_cfg = constant_lr(cfg.steps, adamw(0.0), cfg.lr, (cfg.steps / 50).max(1));
            let out = train(
                &model,
                &task,
                &train_cfg,
                &ctx.dir.sub(&label)?,
                ctx.resume,
                &label,
                &mut |_, _| Ok(Vec::new()),
            )?;
            diverged.push((label.clone(), out.diverged_at_step));
            let batch = probe_batch(&task, cfg.probe_windows)?;
            let stats = analyze_heads(&to_f64(&model)?, &[batch], cfg.c, &HEAD_THRESHOLDS)?;
            let cells = class_cells(&stats);
            let title = format!("heads of {label} under saturation (c = {})", cfg.c);
            heat_map(
                &ctx.dir,
                &format!("classes_{label}"),
                &HeatMap {
                    title: &title,
                    x_label: "head",
                    y_label: "layer",
                    cells: &cells,
                    palette: Palette::Categories(&CLASS_NAMES),
                },
            )?;
            runs.push((label, stats));
        }
    }
    write_head_table(&ctx.dir, "heads.csv", &runs)?;
    let edges: Vec<f64> = (0..=cfg.data.seq_len / 2).map(|i| 2.0 * i as f64 + 0.5).collect();
    let counts: Vec<(String, Vec<f64>)> =
        runs.iter().map(|(l, s)| (l.clone(), s.iter().map(|h| h.mean_count).collect())).collect();
    let title = format!("positions attended at {}θ (per-head mean count > 1e-5)", cfg.c);
    let chart = Chart {
        title: &title,
        x_label: "mean number of keys attended",
        y_label: "heads",
        log_x: false,
        log_y: false,
    };
    histogram(&ctx.dir, "positions_attended", &chart, &edges, &counts)?;

    let share = |s: &[HeadStats]| {
        s.iter().filter(|h| matches!(h.class, HeadClass::Hard | HeadClass::Averaging)).count()
            as f64
            / s.len().max(1) as f64
    };
    let count_le_2 = |s: &[HeadStats]| {
        s.iter().filter(|h| h.mean_count <= 2.0 || h.prefix_fraction >= 0.9).count() as f64
            / s.len().max(1) as f64
    };
    let has = |s: &[HeadStats], c: HeadClass| s.iter().any(|h| h.class == c);
    let per = |f: &dyn Fn(&[HeadStats]) -> serde_json::Value| {
        serde_json::Value::Object(runs.iter().map(|(l, s)| (l.clone(), f(s))).collect())
    };
    let trained = diverged.iter().all(|(_, d)| d.is_none());
    let diverged_json =
        serde_json::Value::Object(diverged.iter().map(|(l, d)| (l.clone(), json!(d))).collect());
    let mut claims = Claims::default();
    claims.add(
        "heads-are-hard-or-averaging",
        "Under saturation most heads of a trained LM are hard (argmax) or averaging (mean over the prefix)",
        "Merrill et al. 2021, §5 (bimodal histograms); PAPERS.md §6 target 12",
        "every trained LM: (hard + averaging heads) / heads ≥ 0.7 (classes by HEAD_THRESHOLDS: hard = mean count ≤ 2, averaging = count ≥ 0.9 of the prefix, sink and mixed otherwise)",
        [
            ("share_hard_or_averaging", per(&|s| json!(share(s)))),
            ("share_count_le_2_or_full_prefix", per(&|s| json!(count_le_2(s)))),
            ("classes", per(&|s| class_json(s))),
            ("diverged_at_step", diverged_json.clone()),
        ],
        trained && runs.iter().all(|(_, s)| share(s) >= 0.7),
    );
    claims.add(
        "both-modes-present",
        "Both modes occur: some heads are hard and some are averaging",
        "Merrill et al. 2021, §5; PAPERS.md §6 target 12",
        "every trained LM has at least one hard and at least one averaging head",
        [
            ("hard", per(&|s| json!(s.iter().filter(|h| h.class == HeadClass::Hard).count()))),
            (
                "averaging",
                per(&|s| json!(s.iter().filter(|h| h.class == HeadClass::Averaging).count())),
            ),
            ("mean_count", per(&|s| json!(s.iter().map(|h| h.mean_count).collect::<Vec<_>>()))),
            (
                "mean_prefix",
                json!(runs.first().and_then(|(_, s)| s.first()).map(|h| h.mean_prefix)),
            ),
        ],
        trained
            && runs.iter().all(|(_, s)| has(s, HeadClass::Hard) && has(s, HeadClass::Averaging)),
    );
    Ok(claims)
}
