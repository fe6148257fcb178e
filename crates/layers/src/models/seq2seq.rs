//! The encoder–decoder for translation (torch_io.py §8.2; Liu et al. 2020's setting):
//! N encoder layers (self-attention, FFN) over the source, M decoder layers (causal
//! self-attention, cross-attention over the memory, FFN) over the target, untied head.
//! Padded keys are hidden with −∞; the loss is Σ token losses / Σ target mask.

use saturn_tensor::ndarray::ArrayView2;
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::AttentionMask;
use crate::block::{DecoderLayer, EncoderLayer, LayerSpec};
use crate::ctx::ForwardCtx;
use crate::embedding::{Embedding, Positions};
use crate::error::{Result, batch_err, config_err};
use crate::init::{DeepNormArch, Initializer, deepnorm_constants};
use crate::linear::Linear;
use crate::models::block_fields::{config_with_block_fields, one};
use crate::models::lm::{LmConfig, token_cross_entropy};
use crate::module::{Module, join};
use crate::norm::Norm;
use crate::residual::ResidualScheme;

config_with_block_fields! {
/// Every architectural choice of the encoder–decoder. Defaults follow torch_io.py §8.2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2SeqConfig {
    pub src_vocab: usize,
    pub tgt_vocab: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_enc_layers: usize,
    pub n_dec_layers: usize,
    pub max_src_len: usize,
    pub max_tgt_len: usize,
    @block
    /// DeepNorm's α on the encoder side; default 0.81·(N⁴M)^(1/16).
    #[serde(default)]
    pub deepnorm_alpha_enc: Option<f64>,
    /// DeepNorm's α on the decoder side; default (3M)^¼.
    #[serde(default)]
    pub deepnorm_alpha_dec: Option<f64>,
    #[serde(default = "one")]
    pub admin_omega: f64,
}
}

impl Seq2SeqConfig {
    /// The encoder–decoder as fairseq's transformer builds it, with a vocabulary shared by both
    /// sides: sinusoidal positions and token embeddings scaled by √d (Vaswani et al. 2017),
    /// Post-LN layer norm with ε = 10⁻⁵, biases, scores scaled by 1/√d_head, no dropout; every
    /// other field at its default. `layers` = (encoder, decoder), `max_len` = (source, target).
    pub fn fairseq(
        vocab: usize,
        d_model: usize,
        n_heads: usize,
        d_ff: usize,
        layers: (usize, usize),
        max_len: (usize, usize),
    ) -> Seq2SeqConfig {
        Seq2SeqConfig {
            src_vocab: vocab,
            tgt_vocab: vocab,
            d_model,
            n_heads,
            d_ff,
            n_enc_layers: layers.0,
            n_dec_layers: layers.1,
            max_src_len: max_len.0,
            max_tgt_len: max_len.1,
            residual: ResidualScheme::default(),
            act: Default::default(),
            norm: Default::default(),
            ln_eps: 1e-5,
            bias: true,
            scale_scores: true,
            positions: crate::embedding::PositionKind::Sinusoidal,
            embed_scale: true,
            dropout: 0.0,
            init: Default::default(),
            qkv_init: Default::default(),
            deepnorm_alpha_enc: None,
            deepnorm_alpha_dec: None,
            admin_omega: 1.0,
        }
    }

    /// Checks sizes and ranges.
    pub fn validate(&self) -> Result<()> {
        if self.residual == ResidualScheme::BranchLn {
            return Err(config_err(
                "branch-LN is defined for the decoder-only LM only (torch_io.py §8.2)",
            ));
        }
        if self.n_enc_layers == 0 || self.n_dec_layers == 0 {
            return Err(config_err("the encoder and the decoder need at least one layer each"));
        }
        self.side(self.src_vocab, self.max_src_len, 1).validate()?;
        self.side(self.tgt_vocab, self.max_tgt_len, 1).validate()
    }

    /// The LM-shaped view of one side, for validation and shared defaults.
    fn side(&self, vocab: usize, max_seq: usize, n_layers: usize) -> LmConfig {
        LmConfig {
            residual: self.residual,
            act: self.act,
            norm: self.norm,
            ln_eps: self.ln_eps,
            bias: self.bias,
            scale_scores: self.scale_scores,
            positions: self.positions,
            embed_scale: self.embed_scale,
            dropout: self.dropout,
            init: self.init,
            qkv_init: self.qkv_init,
            admin_omega: self.admin_omega,
            ..LmConfig::new(vocab, self.d_model, self.n_heads, self.d_ff, n_layers, max_seq)
        }
    }

    /// DeepNorm's ((α_enc, β_enc), (α_dec, β_dec)) (config α wins).
    pub fn deepnorm(&self) -> ((f64, f64), (f64, f64)) {
        let (n, m) = (self.n_enc_layers, self.n_dec_layers);
        let (ae, be) =
            deepnorm_constants(DeepNormArch::Seq2SeqEncoder { enc_layers: n, dec_layers: m });
        let (ad, bd) =
            deepnorm_constants(DeepNormArch::Seq2SeqDecoder { enc_layers: n, dec_layers: m });
        ((self.deepnorm_alpha_enc.unwrap_or(ae), be), (self.deepnorm_alpha_dec.unwrap_or(ad), bd))
    }

    fn spec(&self, alpha_beta: (f64, f64)) -> LayerSpec {
        let mut spec = self.side(self.src_vocab, self.max_src_len, 1).layer_spec();
        if self.residual == ResidualScheme::DeepNorm {
            (spec.alpha, spec.beta) = alpha_beta;
        }
        spec
    }
}

/// An encoder–decoder. Names follow torch_io.py §8.3: `src_embed`, `src_pos`, `tgt_embed`,
/// `tgt_pos`, `enc.layers.{i}.…`, `enc.ln_f`, `dec.layers.{i}.…`, `dec.ln_f`, `head`.
#[derive(Debug, Clone)]
pub struct Seq2Seq<T: Float> {
    pub config: Seq2SeqConfig,
    pub src_embed: Embedding<T>,
    pub src_pos: Positions<T>,
    pub tgt_embed: Embedding<T>,
    pub tgt_pos: Positions<T>,
    pub enc: Vec<EncoderLayer<T>>,
    pub enc_ln_f: Option<Norm<T>>,
    pub dec: Vec<DecoderLayer<T>>,
    pub dec_ln_f: Option<Norm<T>>,
    pub head: Linear<T>,
}

/// A translation batch: ids and masks (true = real token) for both sides, [B, S] and [B, T].
#[derive(Debug, Clone, Copy)]
pub struct Seq2SeqBatch<'a> {
    pub src: ArrayView2<'a, usize>,
    pub src_mask: ArrayView2<'a, bool>,
    pub tgt_in: ArrayView2<'a, usize>,
    pub tgt_mask: ArrayView2<'a, bool>,
}

impl<T: Float> Seq2Seq<T> {
    /// A freshly initialized model.
    pub fn new(config: Seq2SeqConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut init = Initializer::new(config.init, seed);
        let d = config.d_model;
        let (enc_ab, dec_ab) = config.deepnorm();
        let (enc_spec, dec_spec) = (config.spec(enc_ab), config.spec(dec_ab));
        let src_embed = Embedding::new(&mut init, config.src_vocab, d);
        let src_pos = Positions::new(config.positions, &mut init, config.max_src_len, d);
        let tgt_embed = Embedding::new(&mut init, config.tgt_vocab, d);
        let tgt_pos = Positions::new(config.positions, &mut init, config.max_tgt_len, d);
        let enc = (0..config.n_enc_layers)
            .map(|i| EncoderLayer::new(format!("enc.layers.{i}"), &enc_spec, &mut init))
            .collect::<Result<Vec<_>>>()?;
        let dec = (0..config.n_dec_layers)
            .map(|i| DecoderLayer::new(format!("dec.layers.{i}"), &dec_spec, &mut init))
            .collect::<Result<Vec<_>>>()?;
        let final_norm = || {
            config.residual.has_final_norm().then(|| Norm::new(config.norm, d, true, config.ln_eps))
        };
        let (enc_ln_f, dec_ln_f) = (final_norm(), final_norm());
        let head = Linear::new(&mut init, d, config.tgt_vocab, false, 1.0);
        Ok(Seq2Seq {
            config,
            src_embed,
            src_pos,
            tgt_embed,
            tgt_pos,
            enc,
            enc_ln_f,
            dec,
            dec_ln_f,
            head,
        })
    }

    fn check(&self, batch: &Seq2SeqBatch<'_>) -> Result<()> {
        let (b, s) = batch.src.dim();
        let (b2, t) = batch.tgt_in.dim();
        if b != b2 || batch.src_mask.dim() != (b, s) || batch.tgt_mask.dim() != (b, t) {
            return Err(batch_err(format!(
                "src {:?}, src_mask {:?}, tgt_in {:?}, tgt_mask {:?} do not agree",
                batch.src.dim(),
                batch.src_mask.dim(),
                batch.tgt_in.dim(),
                batch.tgt_mask.dim()
            )));
        }
        if s == 0 || t == 0 || s > self.config.max_src_len || t > self.config.max_tgt_len {
            return Err(batch_err(format!(
                "lengths {s}, {t} are outside 1..={}, 1..={}",
                self.config.max_src_len, self.config.max_tgt_len
            )));
        }
        if batch.src_mask.column(0).iter().chain(batch.tgt_mask.column(0)).any(|&m| !m) {
            return Err(batch_err(
                "position 0 must be a real token on both sides (so no query sees only padding)",
            ));
        }
        Ok(())
    }

    fn embed(
        &self,
        embed: &Embedding<T>,
        pos: &Positions<T>,
        ids: ArrayView2<'_, usize>,
    ) -> Result<Tensor<T>> {
        let mut h = embed.forward(ids)?;
        if self.config.embed_scale {
            h = h.mul_scalar((self.config.d_model as f64).sqrt());
        }
        pos.add_to(&h)
    }

    /// The encoder's hidden states [e₀ … e_N] and its memory (after `enc.ln_f` under Pre-LN).
    pub fn encode(
        &self,
        src: ArrayView2<'_, usize>,
        src_mask: ArrayView2<'_, bool>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<(Vec<Tensor<T>>, Tensor<T>)> {
        let mut h = self.embed(&self.src_embed, &self.src_pos, src)?;
        let mut hidden = vec![h.clone()];
        if let Some(p) = ctx.admin_profile.as_mut() {
            p.r = 1.0;
        }
        let mask = AttentionMask { causal: false, keys: Some(src_mask), ..Default::default() };
        for layer in &self.enc {
            h = layer.forward(&h, mask, ctx)?;
            hidden.push(h.clone());
        }
        let memory = match &self.enc_ln_f {
            Some(ln) => ln.forward(&h)?,
            None => h,
        };
        Ok((hidden, memory))
    }

    /// Encoder states, decoder states [y₀ … y_M] and logits [B, T, V_tgt].
    #[allow(clippy::type_complexity)]
    pub fn forward_hidden(
        &self,
        batch: &Seq2SeqBatch<'_>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<(Vec<Tensor<T>>, Vec<Tensor<T>>, Tensor<T>)> {
        self.check(batch)?;
        let (enc_hidden, memory) = self.encode(batch.src, batch.src_mask, ctx)?;
        let mut y = self.embed(&self.tgt_embed, &self.tgt_pos, batch.tgt_in)?;
        let mut dec_hidden = vec![y.clone()];
        if let Some(p) = ctx.admin_profile.as_mut() {
            p.r = 1.0;
        }
        let self_mask =
            AttentionMask { causal: true, keys: Some(batch.tgt_mask), ..Default::default() };
        let memory_mask =
            AttentionMask { causal: false, keys: Some(batch.src_mask), ..Default::default() };
        for layer in &self.dec {
            y = layer.forward(&y, &memory, self_mask, memory_mask, ctx)?;
            dec_hidden.push(y.clone());
        }
        if let Some(ln) = &self.dec_ln_f {
            y = ln.forward(&y)?;
        }
        Ok((enc_hidden, dec_hidden, self.head.forward(&y)?))
    }

    /// The logits [B, T, V_tgt].
    pub fn forward(&self, batch: &Seq2SeqBatch<'_>, ctx: &mut ForwardCtx<T>) -> Result<Tensor<T>> {
        Ok(self.forward_hidden(batch, ctx)?.2)
    }

    /// Σ token cross-entropy over real target positions / their number.
    pub fn loss(
        &self,
        batch: &Seq2SeqBatch<'_>,
        tgt_out: ArrayView2<'_, usize>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        let logits = self.forward(batch, ctx)?;
        token_cross_entropy(&logits, tgt_out, Some(batch.tgt_mask))
    }
}

impl<T: Float> Module<T> for Seq2Seq<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.src_embed.visit(&join(prefix, "src_embed"), f);
        self.src_pos.visit(&join(prefix, "src_pos"), f);
        self.tgt_embed.visit(&join(prefix, "tgt_embed"), f);
        self.tgt_pos.visit(&join(prefix, "tgt_pos"), f);
        self.enc.visit(&join(prefix, "enc.layers"), f);
        self.enc_ln_f.visit(&join(prefix, "enc.ln_f"), f);
        self.dec.visit(&join(prefix, "dec.layers"), f);
        self.dec_ln_f.visit(&join(prefix, "dec.ln_f"), f);
        self.head.visit(&join(prefix, "head"), f);
    }
}
