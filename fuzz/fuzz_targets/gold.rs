//! cargo fuzz target: [`multitag_fuzz::gold`].
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| multitag_fuzz::gold(text));
