//! The length-prefixed framing of every stream, over a byte stream.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::wire::fuzz::framing(data));
