//! cargo fuzz target: [`multitag_fuzz::gguf`].
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| multitag_fuzz::gguf(bytes));
