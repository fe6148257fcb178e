//! Batching: language-model windows and padded translation batches, every order from a seed.
//!
//! Batches hold plain row-major index buffers with their shape (`[B, T]`) and boolean masks,
//! ready for an embedding's `index_select`; no tensor type is needed here.

mod lm;
mod translation;

pub use self::lm::{LmBatch, LmEpoch, LmStream};
pub use self::translation::{
    Bucketing, TranslationBatch, TranslationBatchConfig, TranslationExample, translation_batches,
};
