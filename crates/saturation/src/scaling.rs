//! The scaling limit f(x; cθ) and the saturated network (Merrill et al. 2021, §3–4; the
//! norm-growth code's `src/saturate.py`, `finetune_trans.get_saturation`,
//! `eval_pretrain_sat_brown.py`, `plot_trans_scale.py`; PAPERS.md §1.1).
//!
//! - [`with_scaled_parameters`]: every parameter θ_p ← c·θ_p (embeddings, positions, LN gains
//!   and biases, Linear biases, the output layer: all of them, as `saturate(model, c)` does),
//!   then restored bit for bit, even on a panic.
//! - [`Layered`]: a model whose representations h₀ … h_L (the input of each layer, then the
//!   last layer's output) and final output (what the head reads: after the final LN under
//!   Pre-LN) can be read; implemented for [`DecoderLm`] and [`Bert`].
//! - [`probe`]: the representations and attention probabilities of the network at cθ under an
//!   [`AttentionMode`], without gradients. Use `f64` models ([`to_f64`], [`copy_parameters`]):
//!   at c = 1000 the scores grow by c² = 10⁶.
//! - [`saturation_similarity`]: the "sat" metric, the mean over real tokens of
//!   cos(f(x; θ)_t, f(x; cθ)_t), per layer and for the output (c = 1000 in the paper).
//! - [`homogeneity_curve`]: cos(vec f(x; cθ), vec f(x; c_ref·θ)) for several c (flattened over
//!   all tokens, as `plot_trans_scale.py`).
//! - The saturated network sf(x; θ) = lim_{c→∞} f(x; cθ): attention becomes uniform over the
//!   argmax tie set ([`saturn_layers::saturated_softmax`]); every other part of a bias-free LN
//!   network is homogeneous, so sf is f at c_∞·θ with attention in the exactly saturated mode,
//!   c_∞ = [`SATURATION_SCALE`] (the reference's "infinity") — [`saturated_network`].
//!   [`distance_to_saturated`] gives the per-token cosine between f(x; cθ) and sf(x; θ) as c
//!   grows.
//! - [`saturated_limit_check`]: layer by layer, on the same layer inputs, exactly saturated
//!   attention against softmax(c·s) for a large c, on queries whose two largest scores differ by
//!   more than a gap (read off the softmax probabilities: s₁ − s₂ = ln p₁ − ln p₂).

use std::collections::BTreeMap;

use saturn_layers::{
    AttentionMask, AttentionMode, AttentionTrace, Bert, DecoderLm, EncoderLayer, ForwardCtx,
    MaskFill, Module, SublayerTrace, Trace,
};
use saturn_tensor::ndarray::{Array2, Ix3};
use saturn_tensor::{Data, Float, Tensor, no_grad};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::heads::{Visibility, probs4};

/// The reference code's "infinity": `saturate(model, infinity=1000)`.
pub const SATURATION_SCALE: f64 = 1000.0;

/// Restores the parameters when dropped (also when `f` panics).
struct Restore<T: Float> {
    saved: Vec<(Tensor<T>, Data<T>)>,
}

impl<T: Float> Drop for Restore<T> {
    fn drop(&mut self) {
        for (param, data) in self.saved.drain(..) {
            // same shape as before, and parameters are leaves: cannot fail
            let _ = param.set_data(data);
        }
    }
}

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
    let restore = Restore { saved: params.iter().map(|p| (p.clone(), p.data())).collect() };
    if c != 1.0 {
        for p in &params {
            let scaled = p.data().mapv(|v| v * T::cast(c));
            p.set_data(scaled)?;
        }
    }
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

/// Token ids [B, T] and which of them are real (not padding), plus the queries that head
/// statistics read (all real tokens by default).
#[derive(Debug, Clone)]
pub struct TokenBatch {
    pub ids: Array2<usize>,
    /// [B, T], true for a real token; `None`: every token is real.
    pub real: Option<Array2<bool>>,
    /// [B, T], the queries head statistics are taken over; `None`: every real token.
    pub analysed: Option<Array2<bool>>,
}

impl TokenBatch {
    /// Every token real.
    pub fn new(ids: Array2<usize>) -> Self {
        TokenBatch { ids, real: None, analysed: None }
    }

    /// Is token (b, t) real?
    pub fn is_real(&self, b: usize, t: usize) -> bool {
        self.real.as_ref().is_none_or(|m| m[[b, t]])
    }
}

/// The representations of a forward pass.
#[derive(Debug, Clone)]
pub struct Representations<T: Float> {
    /// h₀ … h_L, [B, T, d] each: h_ℓ is the input of layer ℓ, h_L the last layer's output.
    pub layers: Vec<Tensor<T>>,
    /// What the output head reads, [B, T, d] (h_L, or LN(h_L) under Pre-LN).
    pub output: Tensor<T>,
}

/// A model built from [`EncoderLayer`]s whose representations can be read.
pub trait Layered<T: Float>: Module<T> {
    /// The representations for a batch under `ctx` (its mode and trace are honoured).
    fn representations(
        &self,
        batch: &TokenBatch,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Representations<T>>;
    /// The layer stack.
    fn layer_stack(&self) -> &[EncoderLayer<T>];
    /// Whether attention is causal.
    fn causal(&self) -> bool;
    /// What the mask puts on blocked scores (−∞ unless the model reproduces the norm-growth
    /// reference code's multiplicative mask, which hides nothing).
    fn mask_fill(&self) -> MaskFill {
        MaskFill::NegInfinity
    }
    /// Whether a query sees only the keys up to itself: causal, with a mask that hides.
    fn sees_only_the_past(&self) -> bool {
        self.causal() && self.mask_fill() == MaskFill::NegInfinity
    }
}

/// Runs `f` with a trace in `ctx` and returns the sublayer traces it added, leaving `ctx`'s own
/// trace (if any) as it would have been.
fn traced_sublayers<T: Float, R>(
    ctx: &mut ForwardCtx<T>,
    f: impl FnOnce(&mut ForwardCtx<T>) -> Result<R>,
) -> Result<(R, Vec<SublayerTrace<T>>)> {
    let had_trace = ctx.trace.is_some();
    if !had_trace {
        ctx.trace = Some(Trace::default());
    }
    let start = ctx.trace.as_ref().map_or(0, |t| t.sublayers.len());
    let out = f(ctx);
    let trace = ctx.trace.as_ref().map(|t| t.sublayers[start.min(t.sublayers.len())..].to_vec());
    if !had_trace {
        ctx.trace = None;
    }
    Ok((out?, trace.unwrap_or_default()))
}

impl<T: Float> Layered<T> for DecoderLm<T> {
    fn representations(
        &self,
        batch: &TokenBatch,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Representations<T>> {
        let (hidden, _) = self.forward_hidden(batch.ids.view(), ctx)?;
        let last =
            hidden.last().cloned().ok_or_else(|| invalid("representations", "no hidden state"))?;
        let output = match &self.ln_f {
            Some(ln) => ln.forward(&last)?,
            None => last,
        };
        Ok(Representations { layers: hidden, output })
    }

    fn layer_stack(&self) -> &[EncoderLayer<T>] {
        &self.layers
    }

    fn causal(&self) -> bool {
        true
    }

    fn mask_fill(&self) -> MaskFill {
        self.config.mask_fill
    }
}

impl<T: Float> Layered<T> for Bert<T> {
    fn representations(
        &self,
        batch: &TokenBatch,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Representations<T>> {
        let mask = batch.real.as_ref().map(|m| m.view());
        let (output, subs) =
            traced_sublayers(ctx, |ctx| Ok(self.forward(batch.ids.view(), mask, None, ctx)?))?;
        let n = self.layers.len();
        if subs.len() != 2 * n {
            return Err(invalid(
                "representations",
                format!("{} sublayer traces for {n} layers", subs.len()),
            ));
        }
        let mut layers = Vec::with_capacity(n + 1);
        layers.push(if n == 0 { output.clone() } else { subs[0].residual.clone() });
        layers.extend(subs.iter().skip(1).step_by(2).map(|s| s.output.clone()));
        Ok(Representations { layers, output })
    }

    fn layer_stack(&self) -> &[EncoderLayer<T>] {
        &self.layers
    }

    fn causal(&self) -> bool {
        false
    }
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

/// Mean cosines over real tokens, per representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCosines {
    /// One per h_ℓ, ℓ = 0 … L.
    pub layers: Vec<f64>,
    /// Of the output representation.
    pub output: f64,
}

fn rows<T: Float>(x: &Tensor<T>) -> Result<saturn_tensor::ndarray::Array3<f64>> {
    x.to_array().mapv(|v| v.as_f64()).into_dimensionality::<Ix3>().map_err(|_| {
        invalid("token cosine", format!("representations must be [B, T, d], got {:?}", x.shape()))
    })
}

/// The mean over real tokens of cos(a[b, t, :], b[b, t, :]).
pub fn mean_token_cosine<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    batch: &TokenBatch,
) -> Result<f64> {
    let cos = token_cosines(a, b)?;
    let (mut sum, mut n) = (0.0, 0usize);
    for ((i, j), c) in cos.indexed_iter() {
        if batch.is_real(i, j) {
            sum += c;
            n += 1;
        }
    }
    if n == 0 {
        return Err(invalid("token cosine", "no real token"));
    }
    Ok(sum / n as f64)
}

/// cos(a[b, t, :], b[b, t, :]) for every token, [B, T].
pub fn token_cosines<T: Float>(a: &Tensor<T>, b: &Tensor<T>) -> Result<Array2<f64>> {
    let (x, y) = (rows(a)?, rows(b)?);
    if x.dim() != y.dim() {
        return Err(invalid("token cosine", format!("{:?} vs {:?}", x.dim(), y.dim())));
    }
    let (nb, nt, _) = x.dim();
    Ok(Array2::from_shape_fn((nb, nt), |(i, j)| {
        let (u, v) = (
            x.slice(saturn_tensor::ndarray::s![i, j, ..]),
            y.slice(saturn_tensor::ndarray::s![i, j, ..]),
        );
        crate::norms::cosine_from(u.dot(&v), u.dot(&u), v.dot(&v))
    }))
}

/// cos(vec a, vec b) over the real tokens, all features flattened.
pub fn flat_cosine<T: Float>(a: &Tensor<T>, b: &Tensor<T>, batch: &TokenBatch) -> Result<f64> {
    let (x, y) = (rows(a)?, rows(b)?);
    if x.dim() != y.dim() {
        return Err(invalid("flat cosine", format!("{:?} vs {:?}", x.dim(), y.dim())));
    }
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (((i, j, _), &u), &v) in x.indexed_iter().zip(y.iter()) {
        if batch.is_real(i, j) {
            ab += u * v;
            aa += u * u;
            bb += v * v;
        }
    }
    Ok(crate::norms::cosine_from(ab, aa, bb))
}

/// Per-representation mean token cosines between two probes of the same batch.
pub fn layer_cosines<T: Float>(
    a: &Representations<T>,
    b: &Representations<T>,
    batch: &TokenBatch,
) -> Result<LayerCosines> {
    if a.layers.len() != b.layers.len() {
        return Err(invalid(
            "layer cosines",
            format!("{} vs {} layers", a.layers.len(), b.layers.len()),
        ));
    }
    Ok(LayerCosines {
        layers: a
            .layers
            .iter()
            .zip(&b.layers)
            .map(|(x, y)| mean_token_cosine(x, y, batch))
            .collect::<Result<_>>()?,
        output: mean_token_cosine(&a.output, &b.output, batch)?,
    })
}

/// Merrill et al.'s "sat": cos(f(x; θ)_t, f(x; cθ)_t) averaged over real tokens, per layer and
/// for the output, with softmax attention in both (c = [`SATURATION_SCALE`] in the paper).
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

/// How far softmax(c·s) is from exactly saturated attention on one attention layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitCheck {
    pub layer: String,
    /// max |saturated − softmax(c·s)| over the checked queries, keys and heads.
    pub max_abs_diff: f64,
    /// Queries (× heads) whose top-two score gap exceeds the minimum gap.
    pub checked: usize,
    /// Queries (× heads) left out as near ties.
    pub near_ties: usize,
}

/// Compares exactly saturated probabilities with softmax(c·s) ones for the same scores s, on
/// the queries whose two largest scores differ by more than `min_gap`; the gap is read off the
/// softmax(s) probabilities (ln p₁ − ln p₂; a query with one visible key has no runner-up and is
/// checked).
pub fn compare_saturated_to_scaled<T: Float>(
    layer: &str,
    saturated: &Tensor<T>,
    scaled: &Tensor<T>,
    softmax: &Tensor<T>,
    min_gap: f64,
    vis: &Visibility<'_>,
) -> Result<LimitCheck> {
    let (sat, big, soft) =
        (probs4(saturated, "saturated")?, probs4(scaled, "scaled")?, probs4(softmax, "softmax")?);
    if sat.dim() != big.dim() || sat.dim() != soft.dim() {
        return Err(invalid(
            "saturated limit",
            format!("shapes {:?}, {:?}, {:?}", sat.dim(), big.dim(), soft.dim()),
        ));
    }
    let (nb, nh, tq, tk) = sat.dim();
    let keys_ok =
        |b: usize, q: usize, k: usize| !(vis.causal && k > q) && vis.keys.is_none_or(|m| m[[b, k]]);
    let query_ok = |b: usize, q: usize| match (&vis.queries, &vis.keys) {
        (Some(m), _) => m[[b, q]],
        (None, Some(m)) if tq == tk => m[[b, q]],
        _ => true,
    };
    let mut out =
        LimitCheck { layer: layer.to_string(), max_abs_diff: 0.0, checked: 0, near_ties: 0 };
    for b in 0..nb {
        for q in 0..tq {
            if !query_ok(b, q) {
                continue;
            }
            for h in 0..nh {
                let (mut p1, mut p2) = (0.0f64, 0.0f64);
                for k in (0..tk).filter(|&k| keys_ok(b, q, k)) {
                    let p = soft[[b, h, q, k]];
                    if p > p1 {
                        p2 = p1;
                        p1 = p;
                    } else if p > p2 {
                        p2 = p;
                    }
                }
                let gap = if p2 > 0.0 { p1.ln() - p2.ln() } else { f64::INFINITY };
                if gap <= min_gap {
                    out.near_ties += 1;
                    continue;
                }
                out.checked += 1;
                for k in 0..tk {
                    out.max_abs_diff =
                        out.max_abs_diff.max((sat[[b, h, q, k]] - big[[b, h, q, k]]).abs());
                }
            }
        }
    }
    Ok(out)
}

/// Layer by layer on the layer inputs of the exactly saturated network at θ: the attention of
/// each layer under `Saturated { tie_tol }`, `Scaled { c }` and `Softmax`, compared by
/// [`compare_saturated_to_scaled`].
pub fn saturated_limit_check<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    c: f64,
    tie_tol: f64,
    min_gap: f64,
) -> Result<Vec<LimitCheck>> {
    let saturated = AttentionMode::Saturated { tie_tol };
    let inputs = probe(model, batch, 1.0, saturated)?.representations.layers;
    let mask = AttentionMask {
        causal: model.causal(),
        keys: batch.real.as_ref().map(|m| m.view()),
        fill: model.mask_fill(),
    };
    let vis = Visibility {
        causal: model.sees_only_the_past(),
        keys: batch.real.as_ref().map(|m| m.view()),
        queries: batch.analysed.as_ref().map(|m| m.view()),
    };
    no_grad(|| {
        model
            .layer_stack()
            .iter()
            .zip(&inputs)
            .map(|(layer, x)| {
                let run = |mode| -> Result<Tensor<T>> {
                    let mut ctx = ForwardCtx::eval().with_attention(mode).with_trace();
                    layer.forward(x, mask, &mut ctx)?;
                    let trace = ctx.trace.and_then(|t| t.attention.into_iter().next());
                    Ok(trace
                        .ok_or_else(|| {
                            invalid("saturated limit", "the layer recorded no attention")
                        })?
                        .probs)
                };
                let name = layer.sub_attn.name.clone();
                let (sat, big, soft) = (
                    run(saturated)?,
                    run(AttentionMode::Scaled { c })?,
                    run(AttentionMode::Softmax)?,
                );
                compare_saturated_to_scaled(&name, &sat, &big, &soft, min_gap, &vis)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use saturn_layers::{BertConfig, LmConfig, ResidualScheme, saturated_softmax};
    use saturn_tensor::ndarray::Array4;

    use super::*;

    fn lm(scheme: ResidualScheme, seed: u64) -> DecoderLm<f64> {
        let cfg = LmConfig { residual: scheme, ..LmConfig::new(11, 16, 2, 32, 2, 8) };
        DecoderLm::new(cfg, seed).unwrap()
    }

    fn batch(seed: u64) -> TokenBatch {
        TokenBatch::new(Array2::from_shape_fn((3, 8), |(b, t)| {
            ((b * 7 + t * 3) as u64 + seed) as usize % 11
        }))
    }

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

    #[test]
    fn bert_representations_are_its_layer_inputs_and_output() {
        let cfg: BertConfig = serde_json_config();
        let m = Bert::<f64>::new(cfg, 5).unwrap();
        let mut b = TokenBatch::new(Array2::from_shape_fn((2, 5), |(i, j)| (i + 2 * j) % 20));
        b.real = Some(Array2::from_shape_fn((2, 5), |(i, j)| i == 0 || j < 3));
        let r = m.representations(&b, &mut ForwardCtx::eval()).unwrap();
        assert_eq!(r.layers.len(), 3);
        let direct = m
            .forward(b.ids.view(), b.real.as_ref().map(|x| x.view()), None, &mut ForwardCtx::eval())
            .unwrap();
        assert_eq!(r.output.to_vec(), direct.to_vec());
        assert_eq!(r.layers[2].to_vec(), direct.to_vec());
        let mut traced = ForwardCtx::eval().with_trace();
        m.representations(&b, &mut traced).unwrap();
        assert_eq!(traced.trace.unwrap().attention.len(), 2, "the caller's trace is kept");
        let checks = saturated_limit_check(&m, &b, 1e4, 1e-6, 1e-3).unwrap();
        assert_eq!(checks.len(), 2);
        assert!(
            checks.iter().all(|c| c.checked + c.near_ties == 2 * (5 + 3) && c.max_abs_diff < 1e-3),
            "{checks:?}"
        );
    }

    fn serde_json_config() -> BertConfig {
        BertConfig {
            vocab_size: 20,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 10,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Random scores with a unique maximum: softmax(c·s) → the saturated mode, and the
        /// check agrees once c·gap is large.
        #[test]
        fn the_saturated_mode_is_the_limit_of_scaled_softmax(seed in 0u64..1000, n in 2usize..9) {
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut next = || { x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0 };
            let s = Array4::from_shape_fn((1, 2, 3, n), |_| next());
            let scores = Tensor::<f64>::constant(s.clone().into_dyn());
            let sat = saturated_softmax(&scores, 1e-12).unwrap();
            let soft = scores.softmax(-1).unwrap();
            let mut gaps = Vec::new();
            for lane in s.lanes(saturn_tensor::ndarray::Axis(3)) {
                let mut v: Vec<f64> = lane.to_vec();
                v.sort_by(|a, b| b.total_cmp(a));
                gaps.push(v[0] - v[1]);
            }
            let gap = gaps.iter().copied().fold(f64::INFINITY, f64::min);
            prop_assume!(gap > 1e-3);
            for c in [1e4 / gap, 1e5 / gap] {
                let big = scores.mul_scalar(c).softmax(-1).unwrap();
                let chk = compare_saturated_to_scaled("s", &sat, &big, &soft, 0.0, &Visibility::default()).unwrap();
                prop_assert_eq!(chk.checked, 6);
                prop_assert!(chk.max_abs_diff <= n as f64 * (-c * gap).exp() + 1e-12, "{:?}", chk);
            }
        }
    }
}
