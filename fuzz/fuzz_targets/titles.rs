//! cargo fuzz target: [`multitag_fuzz::titles`].
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| multitag_fuzz::titles(bytes));
