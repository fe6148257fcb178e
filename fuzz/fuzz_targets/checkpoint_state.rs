//! Fuzz target `checkpoint_state`: see `saturn_lab::fuzz::checkpoint_state`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| saturn_lab::fuzz::checkpoint_state(data));
