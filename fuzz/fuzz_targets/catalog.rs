//! cargo fuzz target: [`multitag_fuzz::catalog`].
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| multitag_fuzz::catalog(bytes));
