//! `admin-profile` (Liu et al. 2020, §4.2; Transformer-Clinic `--init-type adaptive-profiling`;
//! admin-torch `example/profile.ratio.init`; PAPERS.md §2.4, §6 target 3): Admin's ω from one
//! profiling pass over a fixed batch, for a deep encoder–decoder at init, and the admin-torch
//! closed form.
//!
//! Claims (on the encoder's profile): ω₁ = 1; ω is strictly increasing; ω²_i is linear in i
//! (R² > 0.95); the FFN sublayers add more variance than the attention sublayers (mean ω²
//! increments); the closed form √((n+1)/ln(n+1) − 1) gives 2.02 / 2.60 / 3.40 for
//! n = 12 / 24 / 48.
//!
//! Beside the claims, `streams.csv` describes each encoder sublayer's input stream with ω in
//! place: the share of its second moment common to all positions of a sentence
//! ([`shared_fraction`]), the branch's second moment relative to the input's, and the branch's
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
use saturn_layers::init::admin_omega_closed_form;
use saturn_layers::{ForwardCtx, QkvInit, ResidualScheme, Seq2Seq};
use saturn_tensor::ndarray::{Array1, ArrayD, ArrayView2, Axis};
use saturn_tensor::no_grad;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExperimentCtx;
use super::schemes::mean;
use super::translation::{Seq2SeqShape, TranslationData, init_admin};
use crate::config::{Preset, resolve};
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::summary::Claims;

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
}

impl AdminProfileConfig {
    /// quick: 12 layers (24 encoder sublayers), d = 64; full: 50 layers (100 sublayers),
    /// d = 256, as deep as CPU memory comfortably allows for one pass. Both with the reference's
    /// fused q/k/v init.
    pub fn preset(preset: Preset) -> Self {
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
        }
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

/// The closed form's published values (admin-torch README / PAPERS.md §2.4).
const CLOSED_FORM: [(usize, f64); 3] = [(12, 2.02), (24, 2.60), (48, 3.40)];

/// Profiles each seed's model and checks the claims.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg = resolve(AdminProfileConfig::preset(ctx.preset), ctx.config_file.as_deref())?;
    if cfg.layers < 2 || cfg.batch_pairs == 0 {
        return Err(LabError::Config("need ≥ 2 layers and a non-empty batch".into()));
    }
    ctx.dir.write_toml("config.toml", &cfg)?;
    let data = TranslationData::load(cfg.vocab, cfg.max_len)?;
    let batch = data
        .valid_batches(cfg.batch_pairs, cfg.batch_pairs)?
        .into_iter()
        .next()
        .ok_or_else(|| LabError::Run("no validation pairs".into()))?;
    let mut encoders: Vec<(u64, OmegaProfile)> = Vec::new();
    let mut table = Vec::new();
    let mut series = Vec::new();
    let mut streams = Vec::new();
    let mut attn_shared = Vec::new();
    for &seed in &ctx.seeds {
        let config = cfg.model.config(ResidualScheme::Admin, cfg.layers, cfg.layers, &data);
        let model = Seq2Seq::<f64>::new(config, seed)?;
        let profile = init_admin(&model, &batch)?;
        // the encoder's streams with ω in place (no gradients: a 50-layer graph does not fit)
        let mut traced = ForwardCtx::eval().with_trace();
        no_grad(|| model.encode(batch.src.view(), batch.src_mask.view(), &mut traced))?;
        let trace = traced.trace.take().ok_or_else(|| LabError::Run("no trace recorded".into()))?;
        for s in &trace.sublayers {
            let x = s.residual.to_array();
            let f = s.branch.to_array();
            let real = batch.src_mask.view();
            let input_shared = shared_fraction(&x, real);
            streams.push(vec![
                seed.to_string(),
                s.name.clone(),
                input_shared.to_string(),
                (second_moment(&f, real) / second_moment(&x, real)).to_string(),
                shared_fraction(&f, real).to_string(),
            ]);
            if s.name.ends_with(".attn") {
                attn_shared.push(input_shared);
            }
        }
        for (k, (name, omega)) in profile.iter().enumerate() {
            table.push(vec![
                seed.to_string(),
                (k + 1).to_string(),
                name.clone(),
                omega.to_string(),
            ]);
        }
        let (enc, dec): (Vec<_>, Vec<_>) =
            profile.into_iter().partition(|(name, _)| name.starts_with("enc."));
        let enc = OmegaProfile::new(enc);
        let dec = OmegaProfile::new(dec);
        for (side, p) in [("encoder", &enc), ("decoder", &dec)] {
            let pts = p.omegas.iter().enumerate().map(|(i, w)| ((i + 1) as f64, w * w)).collect();
            series.push(Series::new(format!("{side} ω² (seed {seed})"), pts));
        }
        encoders.push((seed, enc));
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
    )?;
    line_chart(
        &ctx.dir,
        "omega_squared",
        &Chart {
            title: "admin-profile: profiled ω² per sublayer",
            x_label: "sublayer i (encoder: 2 per layer; decoder: 3 per layer)",
            y_label: "ω_i²",
            log_x: false,
            log_y: false,
        },
        &series,
    )?;

    let mut claims = Claims::default();
    let first: Vec<f64> = encoders.iter().map(|(_, p)| p.omegas[0]).collect();
    claims.add(
        "omega-1-is-one",
        "Profiling starts from ω₁ = 1",
        "Transformer-Clinic adaptive-profiling (r starts at 1.0); admin-torch profile.ratio.init; PAPERS.md §6 target 3",
        "ω₁ = 1 exactly, every seed",
        [("omega_1", json!(first))],
        first.iter().all(|&w| w == 1.0),
    );
    let increasing: Vec<bool> = encoders.iter().map(|(_, p)| p.strictly_increasing()).collect();
    claims.add(
        "omega-strictly-increasing",
        "The profiled ω increases with depth",
        "admin-torch profile.ratio.init (1.0, 1.319, 1.455, …, 8.84); PAPERS.md §6 target 3",
        "ω_{i+1} > ω_i for every encoder sublayer, every seed",
        [
            ("encoder_omegas", json!(encoders.iter().map(|(_, p)| &p.omegas).collect::<Vec<_>>())),
            ("strictly_increasing", json!(increasing)),
        ],
        increasing.iter().all(|&b| b),
    );
    let fits: Vec<_> = encoders.iter().map(|(_, p)| p.squared_fit()).collect::<Result<_, _>>()?;
    let worst_r2 = fits.iter().map(|f| f.r2).fold(f64::INFINITY, f64::min);
    claims.add(
        "omega-squared-linear",
        "ω² grows linearly with the sublayer index",
        "Liu et al. 2020, §4.2 (ω_i² = Σ_{j<i} Var[f_j]); admin-torch profile; PAPERS.md §6 target 3",
        "R² of the line ω_i² ~ i > 0.95 on the encoder, every seed",
        [
            ("slopes", json!(fits.iter().map(|f| f.slope).collect::<Vec<_>>())),
            ("r2", json!(fits.iter().map(|f| f.r2).collect::<Vec<_>>())),
            ("worst_r2", json!(worst_r2)),
        ],
        worst_r2 > 0.95,
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
    claims.add(
        "ffn-adds-more-variance",
        "FFN sublayers raise ω² more than attention sublayers do",
        "admin-torch profile.ratio.init (≈0.4 per FFN vs ≈0.2 per attention sublayer at d = 512); PAPERS.md §6 target 3",
        "mean ω² increment over FFN sublayers > over attention sublayers (first increment excluded), every seed",
        [
            ("attention_increment", json!(attn_inc)),
            ("ffn_increment", json!(ffn_inc)),
            ("attention_input_shared_fraction_mean", json!(mean(&attn_shared))),
            ("qkv_init", json!(cfg.model.qkv_init)),
        ],
        ffn_inc.iter().zip(&attn_inc).all(|(f, a)| f > a),
    );
    let closed: Vec<(usize, f64, f64)> =
        CLOSED_FORM.iter().map(|&(n, w)| (n, admin_omega_closed_form(n), w)).collect();
    claims.add(
        "closed-form-values",
        "The closed form ω = √((n+1)/ln(n+1) − 1) gives 2.02 / 2.60 / 3.40 for n = 12 / 24 / 48",
        "admin-torch (O(log n) closed form); PAPERS.md §2.4",
        "|ω(n) − published| < 0.005 for each n",
        [(
            "closed_form",
            json!(
                closed
                    .iter()
                    .map(|(n, w, p)| json!({"n": n, "omega": w, "published": p}))
                    .collect::<Vec<_>>()
            ),
        )],
        closed.iter().all(|(_, w, p)| (w - p).abs() < 0.005),
    );
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use saturn_tensor::ndarray::{Array2, Array3};

    use super::*;

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
