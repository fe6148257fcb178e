//! # saturn-examples
//!
//! Runnable examples of the Saturn library crates, used directly (not through the lab):
//!
//! - `train_char_lm`: a tiny character LM on the embedded tiny-shakespeare, trained with
//!   saturn-layers and saturn-optim; prints the loss going down and the parameter norm going
//!   up (`cargo run -p saturn-examples --example train_char_lm -- --steps 300 --seed 0`).
//! - `minilm_heads`: all-MiniLM-L6-v2 from the data directory, one sentence, and the class of
//!   every attention head under saturation (`cargo run -p saturn-examples --example
//!   minilm_heads [-- MODEL_DIR]`).
//!
//! `cargo xtask test` runs both after the test suite. This library holds no code: it only makes
//! the README's library example a doctest, so that `cargo test --workspace` compiles and runs
//! it.

/// The code blocks of README.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
