//! How close the network at cθ is to the network at θ and to its saturated limit (Merrill et al.
//! 2021, §4–5; `finetune_trans.get_saturation`, `eval_pretrain_sat_brown.py`,
//! `plot_trans_scale.py`):
//!
//! - [`saturation_similarity`]: the "sat" metric, the mean over real tokens of
//!   cos(f(x; θ)_t, f(x; cθ)_t), per layer and for the output (c = 1000 in the paper);
//! - [`homogeneity_curve`]: cos(vec f(x; cθ), vec f(x; c_ref·θ)) for several c (flattened over
//!   all tokens, as `plot_trans_scale.py`);
//! - [`distance_to_saturated`]: the per-token cosine between f(x; cθ) and the saturated network
//!   sf(x; θ) as c grows.

use saturn_layers::AttentionMode;
use saturn_tensor::Float;

use crate::cosines::{LayerCosines, flat_cosine, layer_cosines};
use crate::error::Result;
use crate::layered::{Layered, TokenBatch};
use crate::scaling::{probe, saturated_network};

/// Merrill et al.'s "sat": cos(f(x; θ)_t, f(x; cθ)_t) averaged over real tokens, per layer and
/// for the output, with softmax attention in both (c =
/// [`SATURATION_SCALE`](crate::SATURATION_SCALE) in the paper).
pub fn saturation_similarity<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    c: f64,
) -> Result<LayerCosines> {
    let base = probe(model, batch, 1.0, AttentionMode::Softmax)?;
    let scaled = probe(model, batch, c, AttentionMode::Softmax)?;
    layer_cosines(&base.representations, &scaled.representations, batch)
}

/// cos(vec f(x; cθ), vec f(x; c_ref·θ)) of the output for every c in `cs`.
pub fn homogeneity_curve<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    cs: &[f64],
    c_ref: f64,
) -> Result<Vec<f64>> {
    let reference = probe(model, batch, c_ref, AttentionMode::Softmax)?;
    cs.iter()
        .map(|&c| {
            let p = probe(model, batch, c, AttentionMode::Softmax)?;
            flat_cosine(&p.representations.output, &reference.representations.output, batch)
        })
        .collect()
}

/// For every c in `cs`, the per-token cosines between f(x; cθ) (softmax attention) and the
/// saturated network sf(x; θ).
pub fn distance_to_saturated<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    cs: &[f64],
    tie_tol: f64,
) -> Result<Vec<LayerCosines>> {
    let sat = saturated_network(model, batch, tie_tol)?;
    cs.iter()
        .map(|&c| {
            let p = probe(model, batch, c, AttentionMode::Softmax)?;
            layer_cosines(&p.representations, &sat.representations, batch)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use saturn_layers::{DecoderLm, LmConfig, ResidualScheme};

    use super::*;
    use crate::layered::tests::{batch, lm};

    #[test]
    fn a_model_at_c_one_has_cosine_one_with_itself() {
        for scheme in [ResidualScheme::PostLn, ResidualScheme::PreLn, ResidualScheme::BranchLn] {
            let m = lm(scheme, 1);
            let sat = saturation_similarity(&m, &batch(0), 1.0).unwrap();
            assert!(
                sat.layers.iter().chain([&sat.output]).all(|c| (c - 1.0).abs() < 1e-12),
                "{sat:?}"
            );
            let h = homogeneity_curve(&m, &batch(0), &[1.0], 1.0).unwrap();
            assert!((h[0] - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn a_bias_free_pre_ln_model_approaches_its_saturated_network() {
        // bias-free with LN: f(x; cθ) tends to sf(x; θ) as c grows
        let cfg = LmConfig {
            residual: ResidualScheme::PreLn,
            bias: false,
            ..LmConfig::new(11, 16, 2, 32, 2, 8)
        };
        let m = DecoderLm::<f64>::new(cfg, 4).unwrap();
        let d = distance_to_saturated(&m, &batch(2), &[1.0, 10.0, 100.0, 1000.0], 1e-6).unwrap();
        let out: Vec<f64> = d.iter().map(|l| l.output).collect();
        assert!(out[3] > 0.999_999, "{out:?}");
        assert!(out[0] < out[3], "{out:?}");
    }
}
