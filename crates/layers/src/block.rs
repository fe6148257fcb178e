//! Transformer layers built from sublayers: [`EncoderLayer`] (self-attention, FFN; with a causal
//! mask it is the decoder-only LM's block) and [`DecoderLayer`] (self-attention,
//! cross-attention, FFN: three sublayers, Liu et al. 2020 §2.1).

use saturn_tensor::{Float, Tensor};

use crate::attention::{AttentionMask, MultiHeadAttention, ProjectionInit};
use crate::ctx::ForwardCtx;
use crate::error::Result;
use crate::ffn::{Activation, FeedForward};
use crate::init::Initializer;
use crate::module::{Module, join};
use crate::norm::{Norm, NormKind};
use crate::residual::{ResidualScheme, Sublayer};

/// Everything a layer's construction needs.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub act: Activation,
    pub norm: NormKind,
    pub ln_eps: f64,
    pub bias: bool,
    pub scale_scores: bool,
    pub scheme: ResidualScheme,
    /// DeepNorm's α (ignored otherwise).
    pub alpha: f64,
    /// DeepNorm's β gain on v, o, w1, w2 (1 otherwise).
    pub beta: f64,
    /// Gain on q, k and v ([`crate::init::QkvInit::gain`]).
    pub qkv_gain: f64,
    /// Admin's initial ω.
    pub omega_init: f64,
    pub dropout: f64,
}

impl LayerSpec {
    fn sublayer<T: Float>(&self, name: String, index: usize) -> Sublayer<T> {
        let norm = Norm::new(self.norm, self.d_model, true, self.ln_eps);
        Sublayer::new(
            name,
            index,
            self.scheme,
            norm,
            self.d_model,
            self.alpha,
            self.omega_init,
            self.dropout,
        )
    }

    fn attention<T: Float>(&self, init: &mut Initializer) -> Result<MultiHeadAttention<T>> {
        let deepnorm = self.scheme == ResidualScheme::DeepNorm;
        let projections = ProjectionInit {
            qkv_gain: self.qkv_gain,
            value_gain: self.beta,
            xavier_normal_values: deepnorm,
        };
        MultiHeadAttention::new(
            init,
            self.d_model,
            self.n_heads,
            self.bias,
            self.scale_scores,
            projections,
        )
    }

    fn ffn<T: Float>(&self, init: &mut Initializer) -> FeedForward<T> {
        let deepnorm = self.scheme == ResidualScheme::DeepNorm;
        FeedForward::new(init, self.d_model, self.d_ff, self.act, self.bias, self.beta, deepnorm)
    }
}

/// Self-attention then FFN, each a residual sublayer. Parameters: `attn.*`, `ln1`, `ffn.*`,
/// `ln2`, and `omega1` / `omega2` under Admin.
#[derive(Debug, Clone)]
pub struct EncoderLayer<T: Float> {
    pub name: String,
    pub attn: MultiHeadAttention<T>,
    pub ffn: FeedForward<T>,
    pub sub_attn: Sublayer<T>,
    pub sub_ffn: Sublayer<T>,
}

impl<T: Float> EncoderLayer<T> {
    /// A layer named `name` (e.g. `layers.3`).
    pub fn new(name: String, spec: &LayerSpec, init: &mut Initializer) -> Result<Self> {
        Ok(EncoderLayer {
            attn: spec.attention(init)?,
            ffn: spec.ffn(init),
            sub_attn: spec.sublayer(join(&name, "attn"), 1),
            sub_ffn: spec.sublayer(join(&name, "ffn"), 2),
            name,
        })
    }

    /// The layer applied to x [B, T, d].
    pub fn forward(
        &self,
        x: &Tensor<T>,
        mask: AttentionMask<'_>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        let attn_name = self.sub_attn.name.clone();
        let x = self
            .sub_attn
            .apply(x, ctx, |h, ctx| Ok(self.attn.forward(h, h, mask, ctx, &attn_name)?.0))?;
        self.sub_ffn.apply(&x, ctx, |h, _| self.ffn.forward(h))
    }
}

impl<T: Float> Module<T> for EncoderLayer<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.attn.visit(&join(prefix, "attn"), f);
        self.sub_attn.visit(prefix, f);
        self.ffn.visit(&join(prefix, "ffn"), f);
        self.sub_ffn.visit(prefix, f);
    }
}

/// Causal self-attention, cross-attention over the encoder's memory, and FFN. Parameters:
/// `self_attn.*`, `ln1`, `cross_attn.*`, `ln2`, `ffn.*`, `ln3`, `omega1..3` under Admin.
#[derive(Debug, Clone)]
pub struct DecoderLayer<T: Float> {
    pub name: String,
    pub self_attn: MultiHeadAttention<T>,
    pub cross_attn: MultiHeadAttention<T>,
    pub ffn: FeedForward<T>,
    pub sub_self: Sublayer<T>,
    pub sub_cross: Sublayer<T>,
    pub sub_ffn: Sublayer<T>,
}

impl<T: Float> DecoderLayer<T> {
    /// A layer named `name` (e.g. `dec.layers.0`).
    pub fn new(name: String, spec: &LayerSpec, init: &mut Initializer) -> Result<Self> {
        Ok(DecoderLayer {
            self_attn: spec.attention(init)?,
            cross_attn: spec.attention(init)?,
            ffn: spec.ffn(init),
            sub_self: spec.sublayer(join(&name, "self_attn"), 1),
            sub_cross: spec.sublayer(join(&name, "cross_attn"), 2),
            sub_ffn: spec.sublayer(join(&name, "ffn"), 3),
            name,
        })
    }

    /// The layer applied to the decoder stream y [B, T, d] with encoder memory [B, S, d].
    pub fn forward(
        &self,
        y: &Tensor<T>,
        memory: &Tensor<T>,
        self_mask: AttentionMask<'_>,
        memory_mask: AttentionMask<'_>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        let (self_name, cross_name) = (self.sub_self.name.clone(), self.sub_cross.name.clone());
        let y = self.sub_self.apply(y, ctx, |h, ctx| {
            Ok(self.self_attn.forward(h, h, self_mask, ctx, &self_name)?.0)
        })?;
        let y = self.sub_cross.apply(&y, ctx, |h, ctx| {
            Ok(self.cross_attn.forward(h, memory, memory_mask, ctx, &cross_name)?.0)
        })?;
        self.sub_ffn.apply(&y, ctx, |h, _| self.ffn.forward(h))
    }
}

impl<T: Float> Module<T> for DecoderLayer<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.self_attn.visit(&join(prefix, "self_attn"), f);
        self.sub_self.visit(prefix, f);
        self.cross_attn.visit(&join(prefix, "cross_attn"), f);
        self.sub_cross.visit(prefix, f);
        self.ffn.visit(&join(prefix, "ffn"), f);
        self.sub_ffn.visit(prefix, f);
    }
}
