//! The three model families.

pub mod bert;
mod block_fields;
pub mod lm;
pub mod seq2seq;
