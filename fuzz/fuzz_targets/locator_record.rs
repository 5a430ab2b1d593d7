//! A DHT record offered for a locator key: full validation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::wire::fuzz::locator_record(data));
