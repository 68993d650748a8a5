//! cargo fuzz target: [`multitag_fuzz::config`].
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| multitag_fuzz::config(text));
