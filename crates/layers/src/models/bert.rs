//! A BERT-style encoder (Devlin et al. 2019) that loads Hugging Face checkpoints such as
//! all-MiniLM-L6-v2: word + position + token-type embeddings, an embedding LayerNorm, Post-LN
//! layers with GELU-erf and LN eps 1e-12, and sentence embeddings by mean pooling over real
//! tokens followed by L2 normalization (sentence-transformers).
//!
//! Parameters carry Hugging Face's names (`encoder.layer.{i}.attention.self.query.weight`, …);
//! the layers are this crate's [`EncoderLayer`] with Post-LN, whose names are mapped by
//! [`hf_layer_name`].

use std::path::Path;

use saturn_tensor::ndarray::{Array2, ArrayView2};
use saturn_tensor::{Float, Tensor};
use serde::Deserialize;

use crate::attention::AttentionMask;
use crate::block::{EncoderLayer, LayerSpec};
use crate::checkpoint::{self, LoadOptions};
use crate::ctx::ForwardCtx;
use crate::embedding::Embedding;
use crate::error::{LayerError, Result, batch_err, config_err};
use crate::ffn::Activation;
use crate::init::{InitScheme, Initializer};
use crate::module::{Module, join};
use crate::norm::{Norm, NormKind, NormNames};
use crate::residual::ResidualScheme;

/// The fields of a Hugging Face BERT `config.json` that define the forward pass.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "bert_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn two() -> usize {
    2
}
fn bert_eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

impl BertConfig {
    fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => {
                Err(config_err(format!("unsupported hidden_act `{other}` (gelu, gelu_new, relu)")))
            }
        }
    }
}

/// The Hugging Face name of an [`EncoderLayer`] parameter name (`attn.q.weight` →
/// `attention.self.query.weight`).
pub fn hf_layer_name(name: &str) -> String {
    const MAP: [(&str, &str); 10] = [
        ("attn.q.", "attention.self.query."),
        ("attn.k.", "attention.self.key."),
        ("attn.v.", "attention.self.value."),
        ("attn.o.", "attention.output.dense."),
        ("ln1.gamma", "attention.output.LayerNorm.weight"),
        ("ln1.beta", "attention.output.LayerNorm.bias"),
        ("ffn.w1.", "intermediate.dense."),
        ("ffn.w2.", "output.dense."),
        ("ln2.gamma", "output.LayerNorm.weight"),
        ("ln2.beta", "output.LayerNorm.bias"),
    ];
    MAP.iter()
        .find_map(|(ours, theirs)| name.strip_prefix(ours).map(|rest| format!("{theirs}{rest}")))
        .unwrap_or_else(|| name.to_string())
}

/// A BERT encoder.
#[derive(Debug, Clone)]
pub struct Bert<T: Float> {
    pub config: BertConfig,
    pub word: Embedding<T>,
    pub position: Embedding<T>,
    pub token_type: Embedding<T>,
    pub embed_norm: Norm<T>,
    pub layers: Vec<EncoderLayer<T>>,
}

impl<T: Float> Bert<T> {
    /// A model of this shape with N(0, 0.02) weights (BERT's initializer range).
    pub fn new(config: BertConfig, seed: u64) -> Result<Self> {
        let act = config.activation()?;
        let d = config.hidden_size;
        let mut init = Initializer::new(InitScheme::Normal { std: 0.02 }, seed);
        let spec = LayerSpec {
            d_model: d,
            n_heads: config.num_attention_heads,
            d_ff: config.intermediate_size,
            act,
            norm: NormKind::LayerNorm,
            ln_eps: config.layer_norm_eps,
            bias: true,
            scale_scores: true,
            scheme: ResidualScheme::PostLn,
            alpha: 1.0,
            beta: 1.0,
            qkv_gain: 1.0,
            omega_init: 1.0,
            dropout: 0.0,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| EncoderLayer::new(format!("encoder.layer.{i}"), &spec, &mut init))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            word: Embedding::new(&mut init, config.vocab_size, d),
            position: Embedding::new(&mut init, config.max_position_embeddings, d),
            token_type: Embedding::new(&mut init, config.type_vocab_size, d),
            embed_norm: Norm::new(NormKind::LayerNorm, d, true, config.layer_norm_eps)
                .with_names(NormNames::WeightBias),
            layers,
            config,
        })
    }

    /// Loads `config.json` and `model.safetensors` from a Hugging Face model directory.
    pub fn from_pretrained(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|source| LayerError::Io { path: config_path.display().to_string(), source })?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| config_err(format!("{}: {e}", config_path.display())))?;
        let model = Bert::new(config, 0)?;
        checkpoint::load(
            &dir.join("model.safetensors"),
            &model,
            &LoadOptions { allow_extra: true, file_name: None },
        )?;
        Ok(model)
    }

    /// The last hidden states [B, T, d] for ids [B, T]; `mask` (true = real token) hides padded
    /// keys; token types default to 0.
    pub fn forward(
        &self,
        ids: ArrayView2<'_, usize>,
        mask: Option<ArrayView2<'_, bool>>,
        token_types: Option<ArrayView2<'_, usize>>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        let (b, t) = ids.dim();
        if t == 0 || t > self.config.max_position_embeddings {
            return Err(batch_err(format!(
                "sequence length {t} is outside 1..={}",
                self.config.max_position_embeddings
            )));
        }
        let zeros = Array2::<usize>::zeros((b, t));
        let types = token_types.unwrap_or(zeros.view());
        if types.dim() != (b, t) {
            return Err(batch_err(format!(
                "token types {:?} do not fit ids {:?}",
                types.dim(),
                (b, t)
            )));
        }
        let h = self
            .word
            .forward(ids)?
            .add(&self.position.weight.narrow(0, 0, t)?)?
            .add(&self.token_type.forward(types)?)?;
        let mut h = self.embed_norm.forward(&h)?;
        let attn_mask = AttentionMask { causal: false, keys: mask, ..Default::default() };
        for layer in &self.layers {
            h = layer.forward(&h, attn_mask, ctx)?;
        }
        Ok(h)
    }

    /// Sentence embeddings [B, d]: the mean of the last hidden states over real tokens,
    /// divided by its ℓ2 norm.
    pub fn sentence_embeddings(
        &self,
        ids: ArrayView2<'_, usize>,
        mask: Option<ArrayView2<'_, bool>>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        let (b, t) = ids.dim();
        let h = self.forward(ids, mask, None, ctx)?;
        let weights = Array2::from_shape_fn((b, t), |(i, j)| {
            if mask.is_none_or(|m| m[[i, j]]) { T::one() } else { T::zero() }
        });
        let w = Tensor::constant(weights.into_dyn()).unsqueeze(-1)?;
        let pooled = h.mul(&w)?.sum_axis(1, false)?.div(&w.sum_axis(1, false)?)?;
        let norm = pooled.mul(&pooled)?.sum_axis(-1, true)?.sqrt().add_scalar(1e-12);
        Ok(pooled.div(&norm)?)
    }
}

impl<T: Float> Module<T> for Bert<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.word.visit(&join(prefix, "embeddings.word_embeddings"), f);
        self.position.visit(&join(prefix, "embeddings.position_embeddings"), f);
        self.token_type.visit(&join(prefix, "embeddings.token_type_embeddings"), f);
        self.embed_norm.visit(&join(prefix, "embeddings.LayerNorm"), f);
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_prefix = join(prefix, &format!("encoder.layer.{i}"));
            layer.visit("", &mut |name, t| f(join(&layer_prefix, &hf_layer_name(&name)), t));
        }
    }
}
