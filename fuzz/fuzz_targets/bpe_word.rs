//! Fuzz target `bpe_word`: see `saturn_lab::fuzz::bpe_word`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::bpe_word(data));
