//! The three model families.

pub mod bert;
pub mod lm;
pub mod seq2seq;
