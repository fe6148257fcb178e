//! Fuzz target `config_toml`: see `saturn_lab::fuzz::config_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::config_toml(data));
