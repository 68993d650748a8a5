//! cargo fuzz target: [`multitag_fuzz::tokenizer`].
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| multitag_fuzz::tokenizer(bytes));
