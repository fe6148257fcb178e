//! The scaling θ → cθ behind the saturated network (Merrill et al. 2021, §3–4; the norm-growth
//! code's `src/saturate.py`; docs/REFERENCES.md#merrill-definitions).
//!
//! - [`with_scaled_parameters`]: every parameter θ_p ← c·θ_p (embeddings, positions, LN gains
//!   and biases, Linear biases, the output layer: all of them, as `saturate(model, c)` does),
//!   then restored bit for bit, even on a panic (a [`RestoreGuard`]).
//! - [`copy_parameters`], [`to_f64`]: `f64` twins of trained models; scaling limits should be
//!   taken on them.
//! - [`probe`]: the representations and attention probabilities of the network at cθ under an
//!   [`AttentionMode`], without gradients; [`saturated_network`]: sf(x; θ) = lim_{c→∞} f(x; cθ),
//!   attention uniform over the argmax tie set ([`saturn_layers::saturated_softmax`]) at
//!   c_∞ = [`SATURATION_SCALE`] (the reference's "infinity"). Every other part of a bias-free LN
//!   network is homogeneous, so sf is f at c_∞·θ with attention in the exactly saturated mode.
//!
//! How the attention scores grow with c. The input u of an attention sublayer is homogeneous of
//! degree 1 in c: an LN output c·γ⊙n(x) + c·β, where n(x) = (x − μ)/√(σ² + ε) does not change
//! when x is scaled (up to ε) — under Pre-LN, and after the first layer under Post-LN — or the
//! scaled embeddings (the first Post-LN layer). The query and key are
//! q = cW_q·cu + c·b_q = c²·W_q u + c·b_q (k likewise), so the score s = qᵀk/√d_h is
//!
//! ```text
//! s(cθ) = c⁴·(W_q u)ᵀ(W_k u)/√d_h + c³·((W_q u)ᵀb_k + b_qᵀ(W_k u))/√d_h + c²·b_qᵀb_k/√d_h
//! ```
//!
//! — c⁴ from the weights, c³ and c² from the query/key biases; a bias-free model's scores are
//! c⁴·s(θ) (up to ε). At c = 1000 the scores grow by up to 10¹², which is why probes at large c
//! are taken on `f64` models.

use std::collections::BTreeMap;

use saturn_layers::{AttentionMode, DecoderLm, ForwardCtx, Module};
use saturn_tensor::{Float, RestoreGuard, Tensor, no_grad};

use crate::error::{Result, invalid};
use crate::layered::{Layered, Representations, TokenBatch};
use saturn_layers::AttentionTrace;

/// The reference code's "infinity": `saturate(model, infinity=1000)`.
pub const SATURATION_SCALE: f64 = 1000.0;

/// Runs `f` with every parameter of `model` multiplied by `c`, then restores the parameters
/// exactly (the original values are kept, not divided back).
pub fn with_scaled_parameters<T: Float, M: Module<T>, R>(
    model: &M,
    c: f64,
    f: impl FnOnce(&M) -> R,
) -> Result<R> {
    if !c.is_finite() {
        return Err(invalid("scaled parameters", format!("c = {c} is not finite")));
    }
    // a parameter shared between modules (tied weights) is scaled once
    let mut seen = std::collections::HashSet::new();
    let params: Vec<Tensor<T>> =
        model.parameters().into_iter().filter(|p| seen.insert(p.id())).collect();
    // restores the parameters when dropped (also when `f` panics)
    let restore = if c != 1.0 {
        RestoreGuard::apply(&params, |p| p.data().mapv(|v| v * T::cast(c)).into_shared())?
    } else {
        RestoreGuard::new()
    };
    let out = f(model);
    drop(restore);
    Ok(out)
}

/// Sets every parameter of `dst` from the parameter of the same name in `src`, converting the
/// element type (e.g. an `f32` trained model into its `f64` twin).
pub fn copy_parameters<S: Float, D: Float>(
    src: &impl Module<S>,
    dst: &impl Module<D>,
) -> Result<()> {
    let from: BTreeMap<String, Tensor<S>> = src.named_parameters().into_iter().collect();
    let to = dst.named_parameters();
    if from.len() != to.len() {
        return Err(invalid(
            "copy parameters",
            format!("{} parameters into {}", from.len(), to.len()),
        ));
    }
    for (name, p) in &to {
        let s = from
            .get(name)
            .ok_or_else(|| invalid("copy parameters", format!("the source has no `{name}`")))?;
        if s.shape() != p.shape() {
            return Err(invalid(
                "copy parameters",
                format!(
                    "`{name}` is {:?} in the source and {:?} in the target",
                    s.shape(),
                    p.shape()
                ),
            ));
        }
        p.set_data(s.cast::<D>().data())?;
    }
    Ok(())
}

/// The `f64` twin of a decoder LM (same config, same parameters).
pub fn to_f64<T: Float>(model: &DecoderLm<T>) -> Result<DecoderLm<f64>> {
    let twin = DecoderLm::<f64>::new(model.config.clone(), 0)?;
    copy_parameters(model, &twin)?;
    Ok(twin)
}

/// A forward pass at cθ: representations and every attention layer's probabilities.
#[derive(Debug, Clone)]
pub struct Probe<T: Float> {
    pub representations: Representations<T>,
    pub attention: Vec<AttentionTrace<T>>,
}

/// The network at cθ under `mode`, evaluated without gradients.
pub fn probe<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    c: f64,
    mode: AttentionMode,
) -> Result<Probe<T>> {
    no_grad(|| {
        with_scaled_parameters(model, c, |m| {
            let mut ctx = ForwardCtx::eval().with_attention(mode).with_trace();
            let representations = m.representations(batch, &mut ctx)?;
            let attention = ctx.trace.map(|t| t.attention).unwrap_or_default();
            Ok(Probe { representations, attention })
        })?
    })
}

/// The saturated network sf(x; θ): the network at [`SATURATION_SCALE`]·θ with exactly saturated
/// attention (relative tie tolerance `tie_tol`).
pub fn saturated_network<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    tie_tol: f64,
) -> Result<Probe<T>> {
    probe(model, batch, SATURATION_SCALE, AttentionMode::Saturated { tie_tol })
}

#[cfg(test)]
mod tests {
    use saturn_layers::{LmConfig, ResidualScheme};

    use super::*;
    use crate::layered::tests::{batch, lm};

    #[test]
    fn scaling_is_undone_exactly_even_after_a_panic() {
        let m = lm(ResidualScheme::PostLn, 2);
        let before: Vec<Vec<f64>> = m.parameters().iter().map(Tensor::to_vec).collect();
        let norm =
            with_scaled_parameters(&m, 1000.0, crate::norms::Snapshot::of).unwrap().total_norm();
        assert!((norm / crate::norms::Snapshot::of(&m).total_norm() - 1000.0).abs() < 1e-9);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_scaled_parameters(&m, 3.0, |_| panic!("inside")).unwrap();
        }));
        assert!(caught.is_err());
        let after: Vec<Vec<f64>> = m.parameters().iter().map(Tensor::to_vec).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn tied_parameters_are_scaled_and_counted_once() {
        let w = Tensor::<f64>::param_from_vec(vec![3.0, 4.0], &[1, 2]).unwrap();
        let l = saturn_layers::Linear { weight: w.clone(), bias: None };
        let tied = vec![l.clone(), l];
        assert_eq!(crate::norms::Snapshot::of(&tied).total_norm(), 5.0);
        let inside = with_scaled_parameters(&tied, 10.0, |_| w.to_vec()).unwrap();
        assert_eq!(inside, vec![30.0, 40.0]);
        assert_eq!(w.to_vec(), vec![3.0, 4.0]);
    }

    #[test]
    fn an_f64_twin_computes_what_the_f32_model_computes() {
        let cfg = LmConfig::new(11, 16, 2, 32, 1, 8);
        let m32 = DecoderLm::<f32>::new(cfg, 3).unwrap();
        let m64 = to_f64(&m32).unwrap();
        let b = batch(1);
        let y32 = m32.forward(b.ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
        let y64 = m64.forward(b.ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
        assert!(y32.iter().zip(&y64).all(|(a, b)| (*a as f64 - b).abs() < 1e-4));
        assert!(copy_parameters(&m32, &lm(ResidualScheme::PreLn, 0)).is_err(), "Pre-LN has ln_f");
    }
}
