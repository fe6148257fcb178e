//! `heads-minilm` (Merrill et al. 2021, §5 on pretrained models; PAPERS.md §1.3): the real
//! all-MiniLM-L6-v2 (a 6-layer, 12-head Post-LN BERT) on the English side of Multi30k val, in
//! f64. Every head is classified under saturation (the network at 1000θ, weights > 1e-5;
//! `saturn_saturation::HEAD_THRESHOLDS`), with a class table per layer and head, the histogram
//! of positions attended and example attention maps (soft at θ, saturated at 1000θ).
//!
//! Claim: on this model, exactly saturated attention is the large-c limit of scaled softmax.
//! Layer by layer, on the layer inputs of the exactly saturated network, the attention under
//! `Saturated { tie_tol: 1e-6 }` and under `Scaled { c: 1e4 }` differ by at most 1e-3 on every
//! query whose two largest scores differ by more than 1e-3 (the gap is read off the softmax
//! probabilities at c = 1). Needs the data directory (`SATURN_DATA` or `../shared/data`); when
//! it is missing the claim is recorded as not evaluated.

use std::path::{Path, PathBuf};

use saturn_datasets::tokenize::{Tokenizer, WordPiece};
use saturn_datasets::{Multi30kSplit, data_dir, load_multi30k};
use saturn_layers::{AttentionMode, Bert};
use saturn_saturation::{
    HEAD_THRESHOLDS, HeadClass, HeadStats, LimitCheck, SATURATION_SCALE, TokenBatch, analyze_heads,
    probe, saturated_limit_check,
};
use saturn_tensor::ndarray::{Array2, s};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::heads::{CLASS_NAMES, class_cells, class_json, write_head_table};
use crate::config::{Preset, resolve};
use crate::error::{LabError, Result};
use crate::plot::{Chart, HeatMap, Palette, heat_map, histogram};
use crate::summary::Claims;

/// The config of `heads-minilm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsMinilmConfig {
    /// The first this many English sentences of Multi30k val (0: all 1,014).
    pub sentences: usize,
    /// Sentences per batch (sorted by length, so padding is small).
    pub batch_size: usize,
    /// The scale of "under saturation".
    pub c: f64,
    /// The scale of the softmax compared with exactly saturated attention.
    pub limit_c: f64,
    /// Queries whose top-two score gap is at most this are near ties, left out of the check.
    pub min_gap: f64,
    /// Relative tie tolerance of exactly saturated attention.
    pub tie_tol: f64,
    /// Heads whose attention maps are drawn for the first sentence (one per class first).
    pub example_heads: usize,
    /// The data directory (holding `minilm/` and `multi30k/`); by default `SATURN_DATA`, else
    /// `../shared/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl HeadsMinilmConfig {
    /// quick: 100 sentences; full: all 1,014.
    pub fn preset(preset: Preset) -> Self {
        HeadsMinilmConfig {
            sentences: match preset {
                Preset::Quick => 100,
                Preset::Full => 0,
            },
            batch_size: 32,
            c: SATURATION_SCALE,
            limit_c: 1e4,
            min_gap: 1e-3,
            tie_tol: saturn_layers::attention::DEFAULT_TIE_TOL,
            example_heads: 4,
            data_dir: None,
        }
    }
}

const CLAIM_ID: &str = "saturated-attention-is-the-large-c-limit";
const CLAIM: &str =
    "On all-MiniLM-L6-v2, exactly saturated attention equals the large-c limit of scaled softmax";
const SOURCE: &str =
    "Merrill et al. 2021, §3 (saturated attention = lim softmax(c·s)); PAPERS.md §1.1, §5";

/// Where the model and the sentences are, or why they are not there.
fn locate(explicit: Option<&Path>) -> std::result::Result<(PathBuf, Vec<String>), String> {
    let data = data_dir(explicit).map_err(|e| e.to_string())?;
    let minilm = data.join("minilm");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        if !minilm.join(f).is_file() {
            return Err(format!(
                "{} is missing (all-MiniLM-L6-v2 is read from DATA/minilm)",
                minilm.join(f).display()
            ));
        }
    }
    let pairs = load_multi30k(&data, Multi30kSplit::Valid).map_err(|e| e.to_string())?;
    Ok((minilm, pairs.into_iter().map(|p| p.en).collect()))
}

/// Token batches of the sentences: sorted by length (stable), `batch_size` per batch, padded
/// with `[PAD]` at the end.
fn batches(tok: &WordPiece, sentences: &[String], batch_size: usize) -> Result<Vec<TokenBatch>> {
    let pad = tok
        .token_id("[PAD]")
        .ok_or_else(|| LabError::Run("the MiniLM vocabulary has no [PAD]".into()))?;
    let mut ids: Vec<Vec<usize>> =
        sentences.iter().map(|t| tok.encode(t)).collect::<std::result::Result<_, _>>()?;
    ids.sort_by_key(Vec::len);
    Ok(ids
        .chunks(batch_size.max(1))
        .map(|chunk| {
            let t = chunk.iter().map(Vec::len).max().unwrap_or(1);
            let mut b = TokenBatch::new(Array2::from_shape_fn((chunk.len(), t), |(i, j)| {
                chunk[i].get(j).copied().unwrap_or(pad)
            }));
            b.real = Some(Array2::from_shape_fn((chunk.len(), t), |(i, j)| j < chunk[i].len()));
            b
        })
        .collect())
}

/// Runs the analysis (or records that the data is missing).
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(HeadsMinilmConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    ctx.dir.write_toml("config.toml", &cfg)?;
    let mut claims = Claims::default();
    let expected = format!(
        "max over layers, heads and queries with top-two score gap > {} of |Saturated(tie_tol {}) − Scaled(c = {})| ≤ 1e-3",
        cfg.min_gap, cfg.tie_tol, cfg.limit_c
    );
    let (dir, mut sentences) = match locate(cfg.data_dir.as_deref()) {
        Ok(found) => found,
        Err(reason) => {
            eprintln!("heads-minilm: not evaluated: {reason}");
            claims.add(
                CLAIM_ID,
                CLAIM,
                SOURCE,
                &expected,
                [("evaluated", json!(false)), ("reason", json!(reason))],
                false,
            );
            return Ok(claims);
        }
    };
    if cfg.sentences > 0 {
        sentences.truncate(cfg.sentences);
    }
    let tok = WordPiece::from_tokenizer_json(&dir.join("tokenizer.json"))?;
    let model = Bert::<f64>::from_pretrained(&dir)?;
    let batches = batches(&tok, &sentences, cfg.batch_size)?;
    eprintln!("heads-minilm: {} sentences in {} batches", sentences.len(), batches.len());

    let stats = analyze_heads(&model, &batches, cfg.c, &HEAD_THRESHOLDS)?;
    write_head_table(&ctx.dir, "heads.csv", &[("minilm".to_string(), stats.clone())])?;
    let cells = class_cells(&stats);
    let title = format!("all-MiniLM-L6-v2 heads under saturation (c = {})", cfg.c);
    heat_map(
        &ctx.dir,
        "classes",
        &HeatMap {
            title: &title,
            x_label: "head",
            y_label: "layer",
            cells: &cells,
            palette: Palette::Categories(&CLASS_NAMES),
        },
    )?;
    let max_prefix = stats.iter().map(|h| h.mean_prefix).fold(1.0, f64::max);
    let edges: Vec<f64> =
        (0..=((max_prefix / 2.0).ceil() as usize + 1)).map(|i| 2.0 * i as f64 + 0.5).collect();
    let chart = Chart {
        title: "all-MiniLM-L6-v2: positions attended at 1000θ",
        x_label: "mean number of keys attended (weight > 1e-5)",
        y_label: "heads",
        log_x: false,
        log_y: false,
    };
    histogram(
        &ctx.dir,
        "positions_attended",
        &chart,
        &edges,
        &[("minilm".to_string(), stats.iter().map(|h| h.mean_count).collect())],
    )?;
    example_maps(ctx, &cfg, &model, &tok, &sentences[0], &stats)?;

    let mut checks: Vec<LimitCheck> = Vec::new();
    for batch in &batches {
        for (i, chk) in saturated_limit_check(&model, batch, cfg.limit_c, cfg.tie_tol, cfg.min_gap)?
            .into_iter()
            .enumerate()
        {
            match checks.get_mut(i) {
                Some(acc) => {
                    acc.max_abs_diff = acc.max_abs_diff.max(chk.max_abs_diff);
                    acc.checked += chk.checked;
                    acc.near_ties += chk.near_ties;
                }
                None => checks.push(chk),
            }
        }
    }
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.layer.clone(),
                c.max_abs_diff.to_string(),
                c.checked.to_string(),
                c.near_ties.to_string(),
            ]
        })
        .collect();
    ctx.dir.write_csv(
        "limit_check.csv",
        &["layer", "max_abs_diff", "checked", "near_ties"],
        &rows,
    )?;
    let worst = checks.iter().map(|c| c.max_abs_diff).fold(0.0, f64::max);
    let per_layer = serde_json::Value::Object(
        checks.iter().map(|c| (c.layer.clone(), json!(c.max_abs_diff))).collect(),
    );
    let checked: usize = checks.iter().map(|c| c.checked).sum();
    let ties: usize = checks.iter().map(|c| c.near_ties).sum();
    claims.add(
        CLAIM_ID,
        CLAIM,
        SOURCE,
        &expected,
        [
            ("evaluated", json!(true)),
            ("sentences", json!(sentences.len())),
            ("max_abs_diff", json!(worst)),
            ("max_abs_diff_by_layer", per_layer),
            ("checked_query_heads", json!(checked)),
            ("near_tie_query_heads", json!(ties)),
            ("head_classes", class_json(&stats)),
            ("mean_count_by_layer", mean_by_layer(&stats, |h| h.mean_count)),
            ("entropy_by_layer", mean_by_layer(&stats, |h| h.entropy)),
        ],
        checked > 0 && worst <= 1e-3,
    );
    Ok(claims)
}

fn mean_by_layer(stats: &[HeadStats], f: impl Fn(&HeadStats) -> f64) -> serde_json::Value {
    let mut layers: Vec<(String, f64, usize)> = Vec::new();
    for h in stats {
        match layers.iter_mut().find(|(l, _, _)| *l == h.layer) {
            Some((_, s, n)) => {
                *s += f(h);
                *n += 1;
            }
            None => layers.push((h.layer.clone(), f(h), 1)),
        }
    }
    serde_json::Value::Object(
        layers.into_iter().map(|(l, s, n)| (l, json!(s / n as f64))).collect(),
    )
}

/// Attention maps of a few heads (one per class first, then in order) on one sentence: the soft
/// attention at θ and the saturated one at cθ, with the tokens in `example_tokens.txt`.
fn example_maps(
    ctx: &ExperimentCtx,
    cfg: &HeadsMinilmConfig,
    model: &Bert<f64>,
    tok: &WordPiece,
    sentence: &str,
    stats: &[HeadStats],
) -> Result<()> {
    let ids = tok.encode(sentence)?;
    let tokens: Vec<String> = ids
        .iter()
        .map(|&i| tok.vocab().token(i).map(str::to_string))
        .collect::<std::result::Result<_, _>>()?;
    let listing: String = tokens.iter().enumerate().map(|(i, t)| format!("{i}\t{t}\n")).collect();
    ctx.dir.write_text("example_tokens.txt", &format!("# {sentence}\n{listing}"))?;
    let batch = TokenBatch::new(Array2::from_shape_fn((1, ids.len()), |(_, j)| ids[j]));
    let soft = probe(model, &batch, 1.0, AttentionMode::Softmax)?.attention;
    let sat = probe(model, &batch, cfg.c, AttentionMode::Softmax)?.attention;
    let mut chosen: Vec<&HeadStats> = Vec::new();
    for class in HeadClass::ALL {
        if let Some(h) = stats.iter().find(|h| h.class == class) {
            chosen.push(h);
        }
    }
    for h in stats {
        if chosen.len() >= cfg.example_heads {
            break;
        }
        if !chosen.iter().any(|c| c.layer == h.layer && c.head == h.head) {
            chosen.push(h);
        }
    }
    chosen.truncate(cfg.example_heads);
    for h in chosen {
        for (which, traces) in [("soft", &soft), ("saturated", &sat)] {
            let Some(trace) = traces.iter().find(|t| t.name == h.layer) else { continue };
            let p = trace
                .probs
                .to_array()
                .into_dimensionality::<saturn_tensor::ndarray::Ix4>()
                .map_err(|e| LabError::Run(e.to_string()))?;
            let m = p.slice(s![0, h.head, .., ..]);
            let cells: Vec<Vec<f64>> = m.outer_iter().map(|r| r.to_vec()).collect();
            let layer = layer_index(&h.layer);
            let title = format!(
                "MiniLM layer {layer} head {} ({}), {which}{}",
                h.head,
                h.class.name(),
                if which == "saturated" { format!(" at {}θ", cfg.c) } else { String::new() }
            );
            heat_map(
                &ctx.dir,
                &format!("attention_l{layer}_h{}_{which}", h.head),
                &HeatMap {
                    title: &title,
                    x_label: "key position (example_tokens.txt)",
                    y_label: "query position",
                    cells: &cells,
                    palette: Palette::Continuous { lo: 0.0, hi: 1.0 },
                },
            )?;
        }
    }
    Ok(())
}

/// `encoder.layer.3.attn` → 3.
fn layer_index(name: &str) -> String {
    name.split('.')
        .find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(name)
        .to_string()
}
