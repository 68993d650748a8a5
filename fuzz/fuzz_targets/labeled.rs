//! cargo fuzz target: [`multitag_fuzz::labeled`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| multitag_fuzz::labeled(data));
