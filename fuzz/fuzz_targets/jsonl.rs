//! cargo fuzz target: [`multitag_fuzz::jsonl`].
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| multitag_fuzz::jsonl(text));
