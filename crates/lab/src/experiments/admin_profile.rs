//! `admin-profile` (Liu et al. 2020, §4.2; Transformer-Clinic `--init-type adaptive-profiling`;
//! admin-torch `example/profile.ratio.init`; docs/REFERENCES.md#admin-profiling,
//! docs/REFERENCES.md#target-3): Admin's ω from one profiling pass over a fixed batch, for a deep
//! encoder–decoder at init, and the admin-torch closed form.
//!
//! Claims on the encoder's profile, each judged on one value per seed (an init draw) by the
//! 95 % t interval of their mean ([`crate::claim`]); thresholds as before, no gates (nothing
//! is trained):
//!
//! - `omega-squared-linear`: per seed, R² of the line ω²_i ~ i > 0.95;
//! - `ffn-adds-more-variance`: per seed, the mean ω² increment of the FFN sublayers minus that
//!   of the attention sublayers (first increment excluded) > 0.
//!
//! Not claims, because they are true by construction, but unit tests: ω₁ = 1 and ω strictly
//! increasing (profiling starts at r = 1, and `r² = Var[x·ω] + Var[f] > ω²` for an LN-normalized
//! x: `tests::profiling_starts_at_one_and_increases_in_both_stacks` here and
//! `saturn_dynamics::admin::tests`), and the closed form's 2.02 / 2.60 / 3.40 for
//! n = 12 / 24 / 48 (`saturn_layers::init::tests::admin_closed_form_matches_admin_torch_values`).
//! The sabotage tests (`tests/integration/sabotage_liu.rs`) draw q, k and v separately, and build the
//! Admin arm as Pre-LN ([`Relabel`]: no ω to profile).
//!
//! Beside the claims, `streams.csv` describes each encoder sublayer's input stream with ω in
//! place: the share of its second moment common to all positions of a sentence
//! (`shared_fraction`), the branch's second moment relative to the input's, and the branch's
//! own shared share. They say why attention's increments can exceed the FFN's: an attention
//! branch at init averages nearly uniformly, so it adds about the common part of its input and
//! writes the same vector at every position, which makes the next input more common still.
//!
//! q, k and v are drawn as Transformer-Clinic draws them, as one fused (3d × d) Xavier matrix
//! ([`QkvInit::Fused`]: variance 1/(2d) each). With separate draws (variance 1/d,
//! `model.qkv_init = "separate"`) the attention increments are about twice as large (full
//! preset, code 0603edf: mean 0.87 vs the FFN's 0.32). With the fused draw the FFN adds more
//! over the first ≈ 12 layers (the quick preset's depth) and attention more beyond, as its
//! inputs grow more common (full preset, 50 layers, code 266065b: 0.39 vs 0.32).

use saturn_dynamics::OmegaProfile;
use saturn_layers::{ForwardCtx, QkvInit, ResidualScheme, Seq2Seq};
use saturn_tensor::ndarray::{Array1, ArrayD, ArrayView2, Axis};
use saturn_tensor::no_grad;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, Evidence, Rule, Threshold};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::summary::Claims;
use crate::tasks::aggregate::mean;
use crate::tasks::relabel::Relabel;
use crate::tasks::translation::{Seq2SeqShape, init_admin};
use crate::tasks::translation_data::{SeqBatch, TranslationData};

/// The config of `admin-profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminProfileConfig {
    pub model: Seq2SeqShape,
    /// Encoder and decoder layers.
    pub layers: usize,
    /// The profiling batch: the first this many validation pairs.
    pub batch_pairs: usize,
    pub vocab: usize,
    pub max_len: usize,
    /// Sabotage only (the falsifiability tests): the Admin model built with another scheme
    /// ([`Relabel`] with `arm = "admin"`), which has no ω to profile. Empty in both presets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<Relabel>,
}

impl ExperimentConfig for AdminProfileConfig {
    /// quick: 12 layers (24 encoder sublayers), d = 64; full: 50 layers (100 sublayers),
    /// d = 256, as deep as CPU memory comfortably allows for one pass. Both with the reference's
    /// fused q/k/v init.
    fn preset(preset: Preset) -> Self {
        let (d, layers, pairs) = match preset {
            Preset::Quick => (64, 12, 64),
            Preset::Full => (256, 50, 256),
        };
        AdminProfileConfig {
            model: Seq2SeqShape { qkv_init: QkvInit::Fused, ..Seq2SeqShape::of_width(d) },
            layers,
            batch_pairs: pairs,
            vocab: 2000,
            max_len: 64,
            relabel: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.layers < 2 || self.batch_pairs == 0 {
            return Err(LabError::Config("need ≥ 2 layers and a non-empty batch".into()));
        }
        Ok(())
    }
}

/// The share of a stream's second moment that all real positions of a sentence have in common:
/// Σ_b ‖mean_t x_bt‖² / Σ_b mean_t ‖x_bt‖² over the positions with `real[b, t]`. A uniform
/// attention average keeps exactly this part of its input (then scaled by W_O·W_V); a stream
/// with independent positions has ≈ 1/T of it.
fn shared_fraction(x: &ArrayD<f64>, real: ArrayView2<bool>) -> f64 {
    let (mut common, mut total) = (0.0, 0.0);
    for (b, sentence) in x.outer_iter().enumerate() {
        let mut sum = Array1::<f64>::zeros(sentence.len_of(Axis(1)));
        let (mut n, mut squares) = (0.0, 0.0);
        for (_, row) in sentence.outer_iter().enumerate().filter(|(t, _)| real[[b, *t]]) {
            sum += &row;
            squares += row.mapv(|v| v * v).sum();
            n += 1.0;
        }
        if n > 0.0 {
            common += sum.mapv(|v| v * v).sum() / (n * n);
            total += squares / n;
        }
    }
    common / total
}

/// The mean squared entry of a [B, T, d] stream over the real positions.
fn second_moment(x: &ArrayD<f64>, real: ArrayView2<bool>) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for (b, sentence) in x.outer_iter().enumerate() {
        for (t, row) in sentence.outer_iter().enumerate() {
            if real[[b, t]] {
                sum += row.mapv(|v| v * v).sum();
                count += row.len();
            }
        }
    }
    sum / count as f64
}

/// R² of the line ω_i² ~ i; NaN when undefined (fewer than 2 sublayers, or every ω equal:
/// a flat profile is not the passing R² = 1 of a line).
fn squared_r2(p: &OmegaProfile) -> f64 {
    let constant = p.omegas.windows(2).all(|w| w[0] == w[1]);
    match p.squared_fit() {
        Ok(fit) if !constant => fit.r2,
        _ => f64::NAN,
    }
}

/// One encoder sublayer's input stream with ω in place (a row of `streams.csv`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stream {
    sublayer: String,
    /// [`shared_fraction`] of the sublayer's input.
    input_shared_fraction: f64,
    /// The branch's second moment relative to the input's.
    branch_to_input_moment: f64,
    /// [`shared_fraction`] of the branch's output.
    branch_shared_fraction: f64,
}

/// One seed's Admin model, profiled: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profiled {
    seed: u64,
    /// ω of every sublayer, encoder and decoder, in profiling order.
    omegas: Vec<(String, f64)>,
    /// The encoder's streams.
    streams: Vec<Stream>,
}

/// Builds the Admin model of `seed`, profiles its ω on `batch` and traces its encoder's streams
/// with ω in place.
fn profile(
    cfg: &AdminProfileConfig,
    data: &TranslationData,
    batch: &SeqBatch,
    seed: u64,
) -> Result<Profiled> {
    let built = Relabel::scheme(&cfg.relabel, ResidualScheme::Admin);
    let config = cfg.model.config(built, cfg.layers, cfg.layers, data);
    let model = Seq2Seq::<f64>::new(config, seed)?;
    let omegas = init_admin(&model, batch)?;
    // no gradients: a 50-layer graph does not fit
    let mut traced = ForwardCtx::eval().with_trace();
    no_grad(|| model.encode(batch.src.view(), batch.src_mask.view(), &mut traced))?;
    let trace = traced.trace.take().ok_or_else(|| LabError::Run("no trace recorded".into()))?;
    let real = batch.src_mask.view();
    let streams = trace
        .sublayers
        .iter()
        .map(|s| {
            let x = s.residual.to_array();
            let f = s.branch.to_array();
            Stream {
                sublayer: s.name.clone(),
                input_shared_fraction: shared_fraction(&x, real),
                branch_to_input_moment: second_moment(&f, real) / second_moment(&x, real),
                branch_shared_fraction: shared_fraction(&f, real),
            }
        })
        .collect();
    Ok(Profiled { seed, omegas, streams })
}

/// Profiles each seed's model and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: AdminProfileConfig = ctx.open()?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let batch = data.fixed_batch(cfg.batch_pairs)?;
    // one cell per seed (one model); a profiling pass costs about width² × depth × pairs,
    // beside a fixed part (full: ≈ 4 min a model; quick ≈ 3 s)
    let minutes = 0.04
        + 4.0
            * (cfg.model.d_model as f64 / 256.0).powi(2)
            * (cfg.layers as f64 / 50.0)
            * (cfg.batch_pairs as f64 / 256.0);
    let cells: Vec<Cell<()>> = ctx
        .seeds
        .iter()
        .map(|&seed| Cell::new(seed, format!("admin-seed{seed}"), ()).minutes(minutes))
        .collect();
    let profiled: Vec<Profiled> = ctx
        .cells(&cfg, cells, |cell, _| profile(&cfg, &data, &batch, cell.seed))?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    write_tables(ctx, &profiled)?;
    draw_omega_squared(ctx, &profiled)?;
    Ok(claims(&cfg, &profiled, &ctx.seeds))
}

/// A profile's encoder and decoder ω, each in sublayer order.
fn sides(p: &Profiled) -> (OmegaProfile, OmegaProfile) {
    let (enc, dec): (Vec<_>, Vec<_>) =
        p.omegas.iter().cloned().partition(|(name, _)| name.starts_with("enc."));
    (OmegaProfile::new(enc), OmegaProfile::new(dec))
}

/// `omega.csv` (every profiled ω) and `streams.csv` (each sublayer's input and branch
/// statistics).
fn write_tables(ctx: &ExperimentCtx, profiled: &[Profiled]) -> Result<()> {
    let mut table = Vec::new();
    let mut streams = Vec::new();
    for p in profiled {
        let seed = p.seed;
        for s in &p.streams {
            streams.push(vec![
                seed.to_string(),
                s.sublayer.clone(),
                s.input_shared_fraction.to_string(),
                s.branch_to_input_moment.to_string(),
                s.branch_shared_fraction.to_string(),
            ]);
        }
        for (k, (name, omega)) in p.omegas.iter().enumerate() {
            table.push(vec![
                seed.to_string(),
                (k + 1).to_string(),
                name.clone(),
                omega.to_string(),
            ]);
        }
    }
    ctx.dir.write_csv("omega.csv", &["seed", "index", "sublayer", "omega"], &table)?;
    ctx.dir.write_csv(
        "streams.csv",
        &[
            "seed",
            "sublayer",
            "input_shared_fraction",
            "branch_to_input_moment",
            "branch_shared_fraction",
        ],
        &streams,
    )
}

/// `omega_squared`: ω_i² against i, encoder and decoder of every seed.
fn draw_omega_squared(ctx: &ExperimentCtx, profiled: &[Profiled]) -> Result<()> {
    let mut series = Vec::new();
    for p in profiled {
        let (enc, dec) = sides(p);
        for (side, p2) in [("encoder", &enc), ("decoder", &dec)] {
            let pts = p2.omegas.iter().enumerate().map(|(i, w)| ((i + 1) as f64, w * w)).collect();
            series.push(Series::new(format!("{side} ω² (seed {})", p.seed), pts));
        }
    }
    line_chart(
        &ctx.dir,
        "omega_squared",
        &Chart::new("admin-profile: profiled ω² per sublayer")
            .x("sublayer i (encoder: 2 per layer; decoder: 3 per layer)")
            .y("ω_i²"),
        &series,
    )
}

/// The two claims on each seed's encoder profile.
fn claims(cfg: &AdminProfileConfig, profiled: &[Profiled], seeds: &[u64]) -> Claims {
    let encoders: Vec<(u64, OmegaProfile)> =
        profiled.iter().map(|p| (p.seed, sides(p).0)).collect();
    let attn_shared: Vec<f64> = profiled
        .iter()
        .flat_map(|p| &p.streams)
        .filter(|s| s.sublayer.ends_with(".attn"))
        .map(|s| s.input_shared_fraction)
        .collect();
    let mut claims = Claims::default();
    let relabelled = json!(cfg.relabel);
    // ω₁ = 1 and ω strictly increasing are true by construction of the profiling recurrence
    // (r starts at 1; r² = Var[x·ω] + Var[f] > ω² for an LN-normalized x): unit tests below.
    let r2: Vec<f64> = encoders.iter().map(|(_, p)| squared_r2(p)).collect();
    let slopes: Vec<f64> =
        encoders.iter().map(|(_, p)| p.squared_fit().map_or(f64::NAN, |f| f.slope)).collect();
    claims.push(
        Claim::builder("omega-squared-linear")
            .statement("ω² grows linearly with the sublayer index")
            .source(
                "Liu et al. 2020, §4.2 (ω_i² = Σ_{j<i} Var[f_j]); admin-torch profile; \
                 docs/REFERENCES.md#target-3",
            )
            .expected(
                "per seed, R² of the line ω_i² ~ i over the encoder's sublayers > 0.95 \
                 (undefined for an empty or constant profile)",
            )
            .threshold(Threshold::as_before())
            .measured("slopes", json!(slopes))
            .measured("r2", json!(r2))
            .measured(
                "encoder_omegas",
                json!(encoders.iter().map(|(_, p)| &p.omegas).collect::<Vec<_>>()),
            )
            .measured("relabel", relabelled.clone())
            .evidence(Evidence::new(
                "R² of the line ω_i² ~ i (encoder)",
                seeds,
                r2.clone(),
                Rule::Above(0.95),
            )),
    );
    // increment k (from 0) is ω²_{k+2} − ω²_{k+1} ≈ Var[f] of sublayer k + 1: even k are
    // attention sublayers, odd k FFN ones; k = 0 also carries Var[x₀] − 1 (the embedding) and is
    // left out
    let mut attn_inc = Vec::new();
    let mut ffn_inc = Vec::new();
    for (_, p) in &encoders {
        let inc = p.squared_increments();
        attn_inc.push(mean(&inc.iter().skip(2).step_by(2).copied().collect::<Vec<_>>()));
        ffn_inc.push(mean(&inc.iter().skip(1).step_by(2).copied().collect::<Vec<_>>()));
    }
    // paired by seed: both means come from the same profile
    let excess: Vec<f64> = ffn_inc.iter().zip(&attn_inc).map(|(f, a)| f - a).collect();
    claims.push(
        Claim::builder("ffn-adds-more-variance")
            .statement("FFN sublayers raise ω² more than attention sublayers do")
            .source(
                "admin-torch profile.ratio.init (≈0.4 per FFN vs ≈0.2 per attention sublayer at \
                 d = 512); docs/REFERENCES.md#target-3",
            )
            .expected(
                "per seed, mean ω² increment over FFN sublayers − over attention sublayers > 0 \
                 (first increment excluded)",
            )
            .threshold(Threshold::as_before())
            .measured("attention_increment", json!(attn_inc))
            .measured("ffn_increment", json!(ffn_inc))
            .measured("attention_input_shared_fraction_mean", json!(mean(&attn_shared)))
            .measured("qkv_init", json!(cfg.model.qkv_init))
            .measured("relabel", relabelled)
            .evidence(Evidence::new(
                "mean FFN − mean attention ω² increment (encoder)",
                seeds,
                excess,
                Rule::Above(0.0),
            )),
    );
    claims
}

#[cfg(test)]
mod tests {
    use saturn_tensor::ndarray::{Array2, Array3};

    use super::*;
    use crate::tasks::translation_data::PairSource;

    /// A 3-layer Admin encoder–decoder of width 16 over a 20-token vocabulary, and a batch of
    /// two padded sentences.
    fn tiny_admin(qkv_init: QkvInit, seed: u64) -> (Seq2Seq<f64>, SeqBatch) {
        let data = TranslationData {
            source: PairSource::ShippedCorpus,
            note: String::new(),
            train: Vec::new(),
            valid: Vec::new(),
            vocab: 20,
            max_src_len: 8,
            max_tgt_len: 8,
            tgt_unigram_entropy: 0.0,
        };
        let shape = Seq2SeqShape { qkv_init, ..Seq2SeqShape::of_width(16) };
        let model = Seq2Seq::new(shape.config(ResidualScheme::Admin, 3, 3, &data), seed).unwrap();
        let ids = |k: usize| Array2::from_shape_fn((2, 6), |(b, t)| (5 * b + 3 * t + k) % 19 + 1);
        let mut src_mask = Array2::from_elem((2, 6), true);
        src_mask[[1, 5]] = false;
        let tgt_mask = Array2::from_elem((2, 6), true);
        let batch = SeqBatch { src: ids(0), src_mask, tgt_in: ids(1), tgt_out: ids(2), tgt_mask };
        (model, batch)
    }

    /// Formerly the claims `omega-1-is-one` and `omega-strictly-increasing`: profiling sets
    /// ω₁ = 1 and then r² = Var[x·ω] + Var[f] > ω², so both hold by construction.
    #[test]
    fn profiling_starts_at_one_and_increases_in_both_stacks() {
        for qkv in [QkvInit::Fused, QkvInit::Separate] {
            for seed in 0..3 {
                let (model, batch) = tiny_admin(qkv, seed);
                let profile = init_admin(&model, &batch).unwrap();
                let (enc, dec): (Vec<_>, Vec<_>) =
                    profile.into_iter().partition(|(name, _)| name.starts_with("enc."));
                assert_eq!((enc.len(), dec.len()), (6, 9), "2 + 3 sublayers per layer");
                for stack in [OmegaProfile::new(enc), OmegaProfile::new(dec)] {
                    assert_eq!(stack.omegas[0], 1.0, "{:?}", stack.names);
                    assert!(stack.strictly_increasing(), "{:?}", stack.omegas);
                }
            }
        }
    }

    #[test]
    fn a_flat_or_empty_profile_has_no_r_squared() {
        let flat = OmegaProfile::new(vec![("a".into(), 1.0), ("b".into(), 1.0), ("c".into(), 1.0)]);
        assert!(squared_r2(&flat).is_nan());
        assert!(squared_r2(&OmegaProfile::new(Vec::new())).is_nan());
        let line = OmegaProfile::new(
            (1..=4).map(|i| (format!("s{i}"), (i as f64).sqrt())).collect::<Vec<_>>(),
        );
        assert!((squared_r2(&line) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_shared_fraction_is_one_for_equal_positions_and_zero_for_cancelling_ones() {
        // sentence 0: three equal positions and a padded one that differs;
        // sentence 1: two opposite positions
        let mut x = Array3::<f64>::zeros((2, 4, 2));
        for t in 0..3 {
            x[[0, t, 0]] = 1.0;
            x[[0, t, 1]] = 2.0;
        }
        x[[0, 3, 0]] = -50.0;
        x[[1, 0, 1]] = 3.0;
        x[[1, 1, 1]] = -3.0;
        let mut real = Array2::from_elem((2, 4), true);
        real[[0, 3]] = false;
        real[[1, 2]] = false;
        real[[1, 3]] = false;
        let one = real.clone().select(saturn_tensor::ndarray::Axis(0), &[0]);
        let x = x.into_dyn();
        let first = x.slice(saturn_tensor::ndarray::s![0..1, .., ..]).to_owned().into_dyn();
        assert!((shared_fraction(&first, one.view()) - 1.0).abs() < 1e-15);
        // common 5 (sentence 0) + 0 over total 5 + 9
        assert!((shared_fraction(&x, real.view()) - 5.0 / 14.0).abs() < 1e-15);
        // the mean square over the real entries: (3·5 + 2·9) / (5 positions · 2 features)
        assert!((second_moment(&x, real.view()) - 33.0 / 10.0).abs() < 1e-15);
    }
}
