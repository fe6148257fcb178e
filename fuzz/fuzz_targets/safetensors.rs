//! Fuzz target `safetensors`: see `saturn_lab::fuzz::safetensors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::safetensors(data));
