//! The decoder-only causal language model (torch_io.py §6; Merrill et al.'s LM experiments):
//!
//! h₀ = E\[ids\]·(√d if `embed_scale`) + P[0..T]; L causal [`EncoderLayer`]s; a final LN under
//! Pre-LN; logits = h·W_headᵀ (untied, no bias); loss = mean token cross-entropy.

use saturn_tensor::ndarray::ArrayView2;
use saturn_tensor::{CrossEntropy, Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::{AttentionMask, MaskFill};
use crate::block::{EncoderLayer, LayerSpec};
use crate::ctx::ForwardCtx;
use crate::embedding::{Embedding, PositionKind, Positions};
use crate::error::{Result, batch_err, config_err};
use crate::ffn::Activation;
use crate::init::{DeepNormArch, InitScheme, Initializer, QkvInit, deepnorm_constants};
use crate::linear::Linear;
use crate::models::block_fields::{config_with_block_fields, one};
use crate::module::{Module, join};
use crate::norm::{Norm, NormKind};
use crate::residual::ResidualScheme;

config_with_block_fields! {
/// Every architectural choice of the decoder-only LM. Defaults follow torch_io.py §6; the fields
/// it shares with the encoder–decoder are spliced in at `@block` (module `block_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmConfig {
    pub vocab: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    /// The number of learned positions (the longest sequence).
    pub max_seq: usize,
    @block
    /// DeepNorm's α; default (2L)^¼.
    #[serde(default)]
    pub deepnorm_alpha: Option<f64>,
    /// Admin's ω before profiling.
    #[serde(default = "one")]
    pub admin_omega: f64,
    /// What the causal mask puts on future scores: −∞ (correct, the default), or 0 to reproduce
    /// the norm-growth reference code's multiplicative mask (the LM then sees the future).
    #[serde(default)]
    pub mask_fill: MaskFill,
}
}

impl LmConfig {
    /// A config with torch_io's defaults for everything but the sizes.
    pub fn new(
        vocab: usize,
        d_model: usize,
        n_heads: usize,
        d_ff: usize,
        n_layers: usize,
        max_seq: usize,
    ) -> Self {
        LmConfig {
            vocab,
            d_model,
            n_heads,
            d_ff,
            n_layers,
            max_seq,
            residual: ResidualScheme::PostLn,
            act: Activation::GeluTanh,
            norm: NormKind::LayerNorm,
            ln_eps: 1e-5,
            bias: true,
            scale_scores: true,
            positions: PositionKind::Learned,
            embed_scale: false,
            dropout: 0.0,
            init: InitScheme::XavierUniform,
            qkv_init: QkvInit::Separate,
            deepnorm_alpha: None,
            admin_omega: 1.0,
            mask_fill: MaskFill::NegInfinity,
        }
    }

    /// Checks sizes and ranges; every problem is one sentence.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab", self.vocab),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("max_seq", self.max_seq),
        ] {
            if v == 0 {
                return Err(config_err(format!("{name} must be positive")));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(config_err(format!(
                "d_model {} is not divisible by n_heads {}",
                self.d_model, self.n_heads
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(config_err(format!("dropout {} is outside [0, 1)", self.dropout)));
        }
        if self.ln_eps.is_nan() || self.ln_eps < 0.0 {
            return Err(config_err(format!("ln_eps {} must be ≥ 0", self.ln_eps)));
        }
        Ok(())
    }

    /// DeepNorm's (α, β) for this depth (config α wins).
    pub fn deepnorm(&self) -> (f64, f64) {
        let (a, b) = deepnorm_constants(DeepNormArch::Decoder { layers: self.n_layers.max(1) });
        (self.deepnorm_alpha.unwrap_or(a), b)
    }

    pub(crate) fn layer_spec(&self) -> LayerSpec {
        let (alpha, beta) =
            if self.residual == ResidualScheme::DeepNorm { self.deepnorm() } else { (1.0, 1.0) };
        LayerSpec {
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            act: self.act,
            norm: self.norm,
            ln_eps: self.ln_eps,
            bias: self.bias,
            scale_scores: self.scale_scores,
            scheme: self.residual,
            alpha,
            beta,
            qkv_gain: self.qkv_init.gain(self.init),
            omega_init: self.admin_omega,
            dropout: self.dropout,
        }
    }
}

/// A decoder-only causal LM. Parameter names follow torch_io.py §7: `embed.weight`,
/// `pos.weight`, `layers.{i}.…`, `ln_f.{gamma,beta}` (Pre-LN), `head.weight`.
#[derive(Debug, Clone)]
pub struct DecoderLm<T: Float> {
    pub config: LmConfig,
    pub embed: Embedding<T>,
    pub pos: Positions<T>,
    pub layers: Vec<EncoderLayer<T>>,
    pub ln_f: Option<Norm<T>>,
    pub head: Linear<T>,
}

impl<T: Float> DecoderLm<T> {
    /// A freshly initialized model; the same config and seed give the same parameters.
    pub fn new(config: LmConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut init = Initializer::new(config.init, seed);
        let d = config.d_model;
        let embed = Embedding::new(&mut init, config.vocab, d);
        let pos = Positions::new(config.positions, &mut init, config.max_seq, d);
        let spec = config.layer_spec();
        let layers = (0..config.n_layers)
            .map(|i| EncoderLayer::new(format!("layers.{i}"), &spec, &mut init))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = config
            .residual
            .has_final_norm()
            .then(|| Norm::new(config.norm, d, true, config.ln_eps));
        let head = Linear::new(&mut init, d, config.vocab, false, 1.0);
        Ok(DecoderLm { config, embed, pos, layers, ln_f, head })
    }

    /// h₀ = E\[ids\] (·√d) + positions, [B, T, d].
    pub fn embed(&self, ids: ArrayView2<'_, usize>) -> Result<Tensor<T>> {
        let (_, t) = ids.dim();
        if t == 0 || t > self.config.max_seq {
            return Err(batch_err(format!(
                "sequence length {t} is outside 1..={}",
                self.config.max_seq
            )));
        }
        let mut h = self.embed.forward(ids)?;
        if self.config.embed_scale {
            h = h.mul_scalar((self.config.d_model as f64).sqrt());
        }
        self.pos.add_to(&h)
    }

    /// The hidden states [h₀, h₁ … h_L] (torch_io's `hidden.*`: Pre-LN's are the residual stream
    /// before `ln_f`) and the logits [B, T, V].
    pub fn forward_hidden(
        &self,
        ids: ArrayView2<'_, usize>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<(Vec<Tensor<T>>, Tensor<T>)> {
        let mut h = self.embed(ids)?;
        let mut hidden = vec![h.clone()];
        if let Some(p) = ctx.admin_profile.as_mut() {
            p.r = 1.0;
        }
        let mask = AttentionMask { causal: true, keys: None, fill: self.config.mask_fill };
        for layer in &self.layers {
            h = layer.forward(&h, mask, ctx)?;
            hidden.push(h.clone());
        }
        if let Some(ln) = &self.ln_f {
            h = ln.forward(&h)?;
        }
        Ok((hidden, self.head.forward(&h)?))
    }

    /// The logits [B, T, V] for token ids [B, T].
    pub fn forward(
        &self,
        ids: ArrayView2<'_, usize>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        Ok(self.forward_hidden(ids, ctx)?.1)
    }

    /// Mean cross-entropy of the logits for `inputs` against `targets` (both [B, T]).
    pub fn loss(
        &self,
        inputs: ArrayView2<'_, usize>,
        targets: ArrayView2<'_, usize>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        if inputs.dim() != targets.dim() {
            return Err(batch_err(format!(
                "inputs {:?} and targets {:?} differ in shape",
                inputs.dim(),
                targets.dim()
            )));
        }
        let logits = self.forward(inputs, ctx)?;
        token_cross_entropy(&logits, targets, None)
    }
}

/// Mean cross-entropy of logits [B, T, V] against targets [B, T], over the positions where
/// `mask` (if given) is true.
pub fn token_cross_entropy<T: Float>(
    logits: &Tensor<T>,
    targets: ArrayView2<'_, usize>,
    mask: Option<ArrayView2<'_, bool>>,
) -> Result<Tensor<T>> {
    let shape = logits.shape();
    let (b, t) = targets.dim();
    if shape.len() != 3 || shape[0] != b || shape[1] != t {
        return Err(batch_err(format!("logits {shape:?} do not fit targets [{b}, {t}]")));
    }
    if let Some(m) = mask.filter(|m| m.dim() != (b, t)) {
        return Err(batch_err(format!(
            "target mask {:?} does not fit targets [{b}, {t}]",
            m.dim()
        )));
    }
    const IGNORED: usize = usize::MAX;
    let flat: Vec<usize> = targets
        .indexed_iter()
        .map(|((i, j), &y)| if mask.is_none_or(|m| m[[i, j]]) { y } else { IGNORED })
        .collect();
    let opts = CrossEntropy { ignore_index: Some(IGNORED), label_smoothing: 0.0 };
    Ok(logits.reshape(&[b * t, shape[2]])?.cross_entropy(&flat, opts)?)
}

impl<T: Float> Module<T> for DecoderLm<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.embed.visit(&join(prefix, "embed"), f);
        self.pos.visit(&join(prefix, "pos"), f);
        self.layers.visit(&join(prefix, "layers"), f);
        self.ln_f.visit(&join(prefix, "ln_f"), f);
        self.head.visit(&join(prefix, "head"), f);
    }
}
