//! cargo fuzz target: [`multitag_fuzz::binder_types`].
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| multitag_fuzz::binder_types(text));
