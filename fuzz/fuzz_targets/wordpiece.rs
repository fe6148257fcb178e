//! Fuzz target `wordpiece`: see `saturn_lab::fuzz::wordpiece`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::wordpiece(data));
