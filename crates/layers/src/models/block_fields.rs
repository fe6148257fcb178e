//! The architectural fields every model config shares — residual scheme, activation, norm and
//! its ε, biases, score scaling, positions, embedding scale, dropout, init and the q/k/v draw —
//! written once and spliced into [`LmConfig`](super::lm::LmConfig) and
//! [`Seq2SeqConfig`](super::seq2seq::Seq2SeqConfig) by [`config_with_block_fields!`].
//!
//! Why a macro and not a nested `BlockConfig` struct: the configs are read from users' TOML and
//! from checkpoints with unknown keys refused (`deny_unknown_fields`), which serde cannot combine
//! with `#[serde(flatten)]`; and a nested struct would change every config file's keys
//! (`block.residual`) and every `cfg.residual`. Spliced fields keep the files, the field access
//! and the struct-update syntax (`LmConfig { residual, ..LmConfig::new(…) }`) as they are. The
//! defaults are torch_io.py §6's.

// serde defaults of the shared fields
pub(crate) fn default_ln_eps() -> f64 {
    1e-5
}
pub(crate) fn yes() -> bool {
    true
}
pub(crate) fn one() -> f64 {
    1.0
}

/// Declares a config struct whose fields are its own leading fields (the sizes), then the shared
/// block fields, then its own trailing fields: `pub struct X { pub a: usize, @block pub b: T, }`.
macro_rules! config_with_block_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$head_meta:meta])* pub $head:ident: $head_ty:ty,)*
            @block
            $($(#[$tail_meta:meta])* pub $tail:ident: $tail_ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$head_meta])* pub $head: $head_ty,)*
            /// How each sublayer's residual and layer norm are arranged (Post-LN by default).
            #[serde(default)]
            pub residual: $crate::residual::ResidualScheme,
            /// The FFN's activation.
            #[serde(default)]
            pub act: $crate::ffn::Activation,
            /// Layer norm or RMS norm.
            #[serde(default)]
            pub norm: $crate::norm::NormKind,
            /// The norms' ε.
            #[serde(default = "crate::models::block_fields::default_ln_eps")]
            pub ln_eps: f64,
            /// Biases in every Linear except the head.
            #[serde(default = "crate::models::block_fields::yes")]
            pub bias: bool,
            /// Scores divided by √d_head.
            #[serde(default = "crate::models::block_fields::yes")]
            pub scale_scores: bool,
            /// Learned or sinusoidal positions (or none).
            #[serde(default)]
            pub positions: $crate::embedding::PositionKind,
            /// Token embeddings multiplied by √d (fairseq).
            #[serde(default)]
            pub embed_scale: bool,
            /// Dropout probability of every dropout site.
            #[serde(default)]
            pub dropout: f64,
            /// The initialization scheme.
            #[serde(default)]
            pub init: $crate::init::InitScheme,
            /// How q, k and v are drawn (separately, the default; or as one fused matrix).
            #[serde(default)]
            pub qkv_init: $crate::init::QkvInit,
            $($(#[$tail_meta])* pub $tail: $tail_ty,)*
        }
    };
}
pub(crate) use config_with_block_fields;
