//! Fuzz target `multi30k`: see `saturn_lab::fuzz::multi30k`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::multi30k(data));
