//! Fuzz target `bert_config`: see `saturn_lab::fuzz::bert_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::bert_config(data));
