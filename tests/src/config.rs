//! How much to run: proptest cases and statistical seeds, small by default, ten times more with
//! `SATURN_FULL_TESTS=1` (what `cargo xtask test --full` sets).
//!
//! The default run is deterministic: proptest starts from a fixed seed (unless
//! `PROPTEST_RNG_SEED` is set), and statistical tests use seeds `0..K`, so `cargo xtask test`
//! gives the same verdict on every run and never flakes. The full run draws a fresh proptest seed
//! each time (printed by proptest on failure, with the shrunk counterexample) to keep exploring.

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, RngSeed};

/// The environment variable that selects the full run.
pub const FULL_ENV: &str = "SATURN_FULL_TESTS";

/// The proptest seed of the default (deterministic) run.
pub const DEFAULT_PROPTEST_SEED: u64 = 0x5a7_0e2;

/// How many times more cases and seeds the full run uses.
pub const FULL_FACTOR: u32 = 10;

/// Whether this is the full run (`SATURN_FULL_TESTS` set to anything but empty or `0`).
pub fn full() -> bool {
    std::env::var(FULL_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn factor() -> u32 {
    if full() { FULL_FACTOR } else { 1 }
}

/// The number of proptest cases for a test whose default is `default`.
pub fn cases(default: u32) -> u32 {
    default * factor()
}

/// The seeds of a statistical test whose default run uses `default` of them: `0..default`, or
/// ten times as many in the full run.
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    0..default * u64::from(factor())
}

/// The proptest configuration of a test whose default run has `default_cases` cases: that many
/// (ten times more in the full run), from a fixed seed in the default run unless
/// `PROPTEST_RNG_SEED` asks for another. `PROPTEST_CASES` in the environment wins over both.
/// Failing cases are saved beside the test file (`NAME.proptest-regressions`) and replayed first.
pub fn proptest_config(default_cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        // next to the test file: tests/tests/NAME.proptest-regressions (proptest's default looks
        // for a lib.rs beside the test file, which an integration test does not have)
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases(default_cases);
    }
    if !full() && config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(DEFAULT_PROPTEST_SEED);
    }
    config
}
