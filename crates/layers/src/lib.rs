//! # saturn-layers
//!
//! Transformer layers and models on [`saturn_tensor`], with PyTorch-style parameter names
//! (`layers.3.attn.q.weight`, Linear weights [out, in]) so optimizers, norms, checkpoints and
//! analyses all speak the same names.
//!
//! - Layers: [`Linear`], [`Embedding`], [`Positions`] (learned, sinusoidal), [`Norm`]
//!   (LayerNorm, RMSNorm), [`MultiHeadAttention`] (self / cross, causal and key-padding masks as
//!   −∞, [`AttentionMode`]: softmax, scaled softmax(c·s), exactly saturated), [`FeedForward`].
//! - Residual schemes in one enum, [`ResidualScheme`]: Post-LN, Pre-LN, Admin, DeepNorm, branch-LN.
//! - Models: [`DecoderLm`] (causal LM), [`Seq2Seq`] (encoder–decoder), [`Bert`] (loads Hugging
//!   Face checkpoints, sentence embeddings).
//! - Init ([`init`]): Xavier-uniform, normal, DeepNorm constants, Admin's closed form; Admin
//!   profiling in [`admin_profile`].
//! - A forward pass takes a [`ForwardCtx`]: train/eval, dropout RNG, attention mode, and an
//!   optional [`Trace`] of every sublayer's residual, branch and LN input and every head's
//!   probabilities.
//! - [`checkpoint`]: safetensors with the config in the metadata.

pub mod admin;
pub mod attention;
pub mod block;
pub mod checkpoint;
pub mod ctx;
pub mod embedding;
pub mod error;
pub mod ffn;
pub mod init;
pub mod linear;
pub mod models;
pub mod module;
pub mod norm;
pub mod residual;

pub use admin::{admin_profile, set_admin_omegas};
pub use attention::{
    AttentionMask, AttentionMode, MaskFill, MultiHeadAttention, ProjectionInit, saturated_softmax,
};
pub use block::{DecoderLayer, EncoderLayer, LayerSpec};
pub use ctx::{AttentionTrace, ForwardCtx, SublayerTrace, Trace};
pub use embedding::{Embedding, PositionKind, Positions};
pub use error::{LayerError, Result};
pub use ffn::{Activation, FeedForward};
pub use init::{InitScheme, Initializer, QkvInit};
pub use linear::Linear;
pub use models::bert::{Bert, BertConfig};
pub use models::lm::{DecoderLm, LmConfig, token_cross_entropy};
pub use models::seq2seq::{Seq2Seq, Seq2SeqBatch, Seq2SeqConfig};
pub use module::Module;
pub use norm::{Norm, NormKind};
pub use residual::{ResidualScheme, Sublayer};
