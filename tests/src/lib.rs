//! # saturn-theorems
//!
//! The theorem suite: property tests, on random instances, of the theorems and lemmas of the
//! papers Saturn reproduces (Merrill et al. 2021; Liu et al. 2020; Xiong et al. 2020; see
//! `docs/REFERENCES.md`). Each file under `tests/` states one result, cites it, and checks it;
//! `tests/README.md` maps every file to its theorem.
//!
//! This library holds what the test files share:
//!
//! - [`config`]: how many random cases and seeds to run. The default run (`cargo xtask test`) is
//!   small and deterministic; `cargo xtask test --full` (environment `SATURN_FULL_TESTS=1`) runs
//!   ten times as many proptest cases, from a random proptest seed, and ten times as many seeds
//!   in the statistical tests.
//! - [`random`]: seeded random tensors and the random models the theorems talk about (Xiong et
//!   al.'s simplified Transformer, small language models, parameter copies scaled by c).
//! - [`stats`]: means with standard errors for the statistical tests.
//!
//! Everything is `f64`: theorem checks run on the reference precision.

pub mod config;
pub mod random;
pub mod stats;

pub use config::{cases, full, proptest_config, seeds};
pub use stats::Estimate;
