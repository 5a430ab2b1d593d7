//! A `/roost/msg/1` frame from a hostile peer: decode, then open the seal.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::wire::fuzz::message_frame(data));
